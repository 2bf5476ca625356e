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
import { parse } from 'acorn';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { outdir: { type: 'string', default: 'dist' } } });
const outdir = path.resolve(values.outdir);

// Left as imports resolved from node_modules at run time:
// - @electric-sql/pglite reads its WebAssembly and data files beside its own modules;
// - pg, yaml: loaded through createRequire (storage/db.ts loads pg without Node's fetch);
// - minio, undici: loaded only with S3 storage or a mirror, and large;
// - iconv-lite: raw-body requires it when loaded, for bodies read with a charset, which the
//   registry never asks for (it reads bytes); bundled, its encoding tables were 550 KB of source
//   text in the heap (V8 keeps every loaded module's source), never run. From node_modules, only
//   its index is read.
const EXTERNAL = ['@electric-sql/pglite', 'pg', 'yaml', 'minio', 'undici', 'iconv-lite'];

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
// V8 holds a module's source text one byte per character only while every character is Latin-1;
// one other character anywhere makes it two bytes per character. esbuild escapes what it writes of
// strings and names, but keeps comments as they are: five dashes in @koa/router's doc comments
// made the registry's main chunk (1 MB) cost 2.1 MB of heap, idle or not. Those characters become
// '?' in comments (one per UTF-16 unit, so the source maps' columns stay right); one anywhere
// else stops the build, to be escaped in the source.
for (const file of Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'))) {
  const text = readFileSync(file, 'utf8');
  if (!/[\u0100-\uffff]/.test(text)) continue;
  const chars = text.split('');
  const mark = (start, end) => {
    for (let i = start; i < end; i++) if (chars[i].charCodeAt(0) > 0xff) chars[i] = '?';
  };
  parse(text, { ecmaVersion: 'latest', sourceType: 'module', onComment: (_block, _text, start, end) => mark(start, end) });
  const written = chars.join('');
  const left = written.search(/[\u0100-\uffff]/);
  if (left !== -1) throw new Error(`${file}: a character beyond Latin-1 outside a comment at offset ${left}; escape it in the source`);
  writeFileSync(file, written);
}

cpSync('storage/migrations', path.join(outdir, 'storage/migrations'), { recursive: true });
