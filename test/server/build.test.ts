// The build (scripts/build.mjs): what `npm start`, the image and bin/signet run. Every other test
// runs the sources under tsx; this one runs the bundle esbuild writes, whose modules no longer sit
// where the sources do, so each file the registry finds by path at run time (the embedded
// database's thread and init process, the migrations, the console, package.json) is exercised.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startServerProcess } from '../helpers/server-process.js';

const run = promisify(execFile);

test('the built registry initialises a fresh embedded database, takes a push, serves the pull and the console, and its CLI knows its version', async (t) => {
  // In the repository, as dist/ is: package.json above it, node_modules for what stays external.
  const outdir = path.resolve(`.build-test-${process.pid}`);
  const data = await mkdtemp(path.join(os.tmpdir(), 'signet-build-'));
  t.teardown(async () => {
    await rm(outdir, { recursive: true, force: true });
    await rm(data, { recursive: true, force: true });
  });
  await run(process.execPath, ['scripts/build.mjs', '--outdir', outdir]);
  // V8 keeps a loaded module's source in the heap at two bytes a character once one character is
  // beyond Latin-1 (the main chunk: 2.1 MB instead of 1 MB), and iconv-lite's tables stay out.
  for (const file of await readdir(path.join(outdir, 'chunks'))) {
    if (!file.endsWith('.js')) continue;
    const text = await readFile(path.join(outdir, 'chunks', file), 'utf8');
    t.is(text.search(/[\u0100-\uffff]/), -1, `${file} holds a character beyond Latin-1`);
    t.false(text.includes('sbcs-data-generated'), `${file} bundles iconv-lite's encodings`);
  }
  // Vite's console build is not this script's; a stand-in page shows where the server looks.
  await mkdir(path.join(outdir, 'console'));
  await writeFile(path.join(outdir, 'console/index.html'), '<!doctype html><title>built console</title>');
  const main = path.join(outdir, 'server/main.js');

  // seed: false: an empty data directory, so the registry runs initdb in its own process.
  const server = await startServerProcess(
    { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(data, 'storage'), REGISTRY_DATABASE_DATADIRECTORY: path.join(data, 'database') },
    120_000,
    { seed: false, main },
  );
  t.teardown(() => server.kill('SIGTERM').then(() => undefined));
  const client = createClient(server.url);
  const image = makeImage();
  t.is((await client.pushImage('built/app', image, 'v1')).status, 201);
  const pulled = await client.getManifest('built/app', 'v1');
  t.is(pulled.status, 200);
  t.true(Buffer.from(await pulled.arrayBuffer()).equals(image.manifest.data));
  const tags = (await (await client.request('/v2/built/app/tags/list')).json()) as { tags: string[] };
  t.deepEqual(tags.tags, ['v1']);
  const page = await client.request('/', { headers: { Accept: 'text/html' } });
  t.is(page.status, 200);
  t.regex(await page.text(), /built console/);

  const { version } = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
  t.is((await run(process.execPath, [main, '--version'])).stdout.trim(), version);
  t.is(await server.kill('SIGTERM'), 0);
});
