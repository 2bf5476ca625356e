import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { blobStoreConformance, failingStream, listAll, readAll, streamOf } from '../conformance/blob-store.js';

blobStoreConformance(test, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-fs-store-'));
  return {
    store: createFilesystemBlobStore({ rootDirectory: dir }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

// The rest is particular to the filesystem: keys become paths, so none may leave the root.

async function tempStore(t: { teardown(fn: () => Promise<void>): void }) {
  const parent = await mkdtemp(path.join(os.tmpdir(), 'signet-fs-root-'));
  t.teardown(() => rm(parent, { recursive: true, force: true }));
  const root = path.join(parent, 'root');
  return { parent, root, store: createFilesystemBlobStore({ rootDirectory: root }) };
}

/** Every file under `dir`, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

const badKeys = [
  '',
  '/',
  '/etc/passwd',
  '/tmp/x',
  '..',
  '../escape',
  'a/../../escape',
  'a/..',
  'uploads/../../escape',
  '.',
  'a/./b',
  'a//b',
  'a/',
  '/a',
  'a\\..\\b',
  'a/b\u0000c',
  'a b',
  '_tmp/x',
  '_tmp',
];

test('keys that could leave the root or are malformed are refused by every operation', async (t) => {
  const { parent, root, store } = await tempStore(t);
  await store.write('uploads/ok', streamOf(Buffer.from('ok')));
  for (const key of badKeys) {
    const label = JSON.stringify(key);
    await t.throwsAsync(store.write(key, streamOf(Buffer.from('evil'))), { message: /invalid storage key/ }, label);
    await t.throwsAsync(store.stat(key), { message: /invalid storage key/ }, label);
    await t.throwsAsync(store.read(key), { message: /invalid storage key/ }, label);
    await t.throwsAsync(store.delete(key), { message: /invalid storage key/ }, label);
    await t.throwsAsync(store.move('uploads/ok', key), { message: /invalid storage key/ }, label);
    await t.throwsAsync(store.move(key, 'uploads/ok'), { message: /invalid storage key/ }, label);
  }
  // Nothing was written anywhere, inside the root or beside it, and the good object is untouched.
  t.deepEqual(await filesUnder(parent), [path.join('root', 'uploads', 'ok')]);
  t.deepEqual(await filesUnder(path.join(root, '_tmp')), []);
  t.is((await readAll(await store.read('uploads/ok'))).toString(), 'ok');
});

test('list refuses prefixes whose directory part would leave the root', async (t) => {
  const { parent, store } = await tempStore(t);
  await writeFile(path.join(parent, 'outside'), 'secret');
  await store.write('uploads/ok', streamOf(Buffer.from('ok')));
  for (const prefix of ['../', '../out', '/etc/', 'a/../../', 'uploads//']) {
    await t.throwsAsync(listAll(store, prefix), { message: /invalid storage key/ }, prefix);
  }
});

test('list never shows temporary files, even for the empty prefix', async (t) => {
  const { root, store } = await tempStore(t);
  await store.write('uploads/a', streamOf(Buffer.from('a')));
  await writeFile(path.join(root, '_tmp', 'leftover'), 'partial');
  t.deepEqual(await listAll(store, ''), ['uploads/a']);
  t.deepEqual(await listAll(store, '_'), []);
});

test('failed and aborted writes leave no temporary file behind', async (t) => {
  const { root, store } = await tempStore(t);
  await t.throwsAsync(store.write('uploads/x', failingStream(Buffer.alloc(300 * 1024))));
  const controller = new AbortController();
  controller.abort();
  await t.throwsAsync(store.write('uploads/y', streamOf(Buffer.alloc(1024)), { signal: controller.signal }));
  await store.write('uploads/z', streamOf(Buffer.alloc(10)));
  // Give a late open() of an aborted write stream the chance to show up.
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.deepEqual(await filesUnder(path.join(root, '_tmp')), []);
  t.deepEqual(await filesUnder(root), [path.join('uploads', 'z')]);
});
