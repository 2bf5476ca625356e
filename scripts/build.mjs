// Builds the server and the command-line tool into dist/ (or the directory given with --outdir):
// esbuild bundles the three entry points, the registry (server/main.ts) and the embedded database's
// thread and init process (storage/pglite-worker.ts, storage/pglite-process.ts), with the
// dependencies they import, into a few files, and the SQL migrations are copied beside them.
//
// Why a bundle rather than tsc's one file per module: a restarted registry answers once its
// modules are loaded, and loading some 300 modules, each resolved, read and linked on its own, was
// most of that time (issue 22: GET /v2/ within 0.5 s of a restart). Bundled, importing the server
// took 190-240 ms against 370-440. Type checking stays with `npm run check` (tsc --noEmit).
//
// Layout (storage/own-files.ts depends on it): every file esbuild writes is one directory below
// the output directory: server/main.js, storage/pglite-*.js, chunks/*.js.
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { outdir: { type: 'string', default: 'dist' } } });
const outdir = path.resolve(values.outdir);

// Left as imports resolved from node_modules at run time:
// - @electric-sql/pglite reads its WebAssembly and data files beside its own modules;
// - pg, yaml: loaded through createRequire (storage/db.ts loads pg without Node's fetch);
// - minio, undici: loaded only with S3 storage or a mirror, and large.
const EXTERNAL = ['@electric-sql/pglite', 'pg', 'yaml', 'minio', 'undici'];

// What an earlier build left (tsc's output had auth/, sigstore/, mirror/ too); never a source tree.
if (existsSync(path.join(outdir, 'package.json'))) throw new Error(`${outdir} holds a package.json: not a build directory`);
for (const dir of ['server', 'storage', 'chunks', 'auth', 'sigstore', 'mirror'])
  rmSync(path.join(outdir, dir), { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const result = await build({
  entryPoints: ['server/main.ts', 'storage/pglite-worker.ts', 'storage/pglite-process.ts'],
  outbase: '.',
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  external: EXTERNAL,
  // CommonJS dependencies bundled into ES modules call require() for Node's built-in modules.
  banner: {
    js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);",
  },
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
});

for (const file of Object.keys(result.metafile.outputs)) {
  const relative = path.relative(outdir, path.resolve(file));
  if (relative.split(path.sep).length !== 2) throw new Error(`${relative}: every built file must be one directory below ${outdir}`);
}
cpSync('storage/migrations', path.join(outdir, 'storage/migrations'), { recursive: true });
