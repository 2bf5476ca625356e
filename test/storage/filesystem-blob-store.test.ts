import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { InvalidStorageKeyError, StorageNotFoundError } from '../../storage/errors.js';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { BAD_KEYS, BAD_PREFIXES, blobStoreConformance, failingStream, listAll, readAll, streamOf } from '../conformance/blob-store.js';
import { sleep } from '../helpers/wait.js';

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

test('malformed keys write nothing anywhere, inside the root or beside it', async (t) => {
  // That every operation refuses them is the conformance suite's business; here, the disk.
  const { parent, root, store } = await tempStore(t);
  await store.write('uploads/ok', streamOf(Buffer.from('ok')));
  for (const key of BAD_KEYS) {
    await t.throwsAsync(store.write(key, streamOf(Buffer.from('evil'))), { instanceOf: InvalidStorageKeyError }, JSON.stringify(key));
    await t.throwsAsync(store.move('uploads/ok', key), { instanceOf: InvalidStorageKeyError }, JSON.stringify(key));
  }
  t.deepEqual(await filesUnder(parent), [path.join('root', 'uploads', 'ok')]);
  t.deepEqual(await filesUnder(path.join(root, '_tmp')), []);
  t.is((await readAll(await store.read('uploads/ok'))).toString(), 'ok');
});

test('list refuses prefixes whose directory part would leave the root', async (t) => {
  const { parent, store } = await tempStore(t);
  await writeFile(path.join(parent, 'outside'), 'secret');
  await store.write('uploads/ok', streamOf(Buffer.from('ok')));
  for (const prefix of BAD_PREFIXES) {
    await t.throwsAsync(listAll(store, prefix), { instanceOf: InvalidStorageKeyError }, prefix);
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
  await sleep(50);
  t.deepEqual(await filesUnder(path.join(root, '_tmp')), []);
  t.deepEqual(await filesUnder(root), [path.join('uploads', 'z')]);
});

test('openReader reads into the caller’s buffer at any position; fewer bytes only at the end', async (t) => {
  const { store } = await tempStore(t);
  const data = randomBytes(3 * 1024 * 1024 + 7);
  await store.write('blobs/sha256/ab/abc', streamOf(data));
  const reader = await store.openReader('blobs/sha256/ab/abc');
  t.teardown(() => reader.close());
  t.is(reader.size, data.length);
  const buffer = Buffer.alloc(1024 * 1024);
  for (const position of [0, 12_345, 2 * 1024 * 1024]) {
    t.is(await reader.read(buffer, position), buffer.length);
    t.true(buffer.equals(data.subarray(position, position + buffer.length)), `at ${position}`);
  }
  t.is(await reader.read(buffer, data.length - 10), 10);
  t.true(buffer.subarray(0, 10).equals(data.subarray(data.length - 10)));
  t.is(await reader.read(buffer, data.length), 0);
});

test('openReader of a missing object or of a key that only prefixes others is StorageNotFoundError', async (t) => {
  const { store } = await tempStore(t);
  await store.write('blobs/sha256/ab/abc', streamOf(Buffer.from('x')));
  await t.throwsAsync(store.openReader('blobs/sha256/ab/missing'), { instanceOf: StorageNotFoundError });
  await t.throwsAsync(store.openReader('blobs/sha256/ab'), { instanceOf: StorageNotFoundError });
});

test('writes go on after the temporary directory was removed under a running store', async (t) => {
  const { root, store } = await tempStore(t);
  await store.write('uploads/one', streamOf(Buffer.from('one')));
  await rm(path.join(root, '_tmp'), { recursive: true, force: true });
  // The first write may fail; the store then makes the directory again.
  await store.write('uploads/two', streamOf(Buffer.from('two'))).catch(() => undefined);
  await store.write('uploads/three', streamOf(Buffer.from('three')));
  t.is((await readAll(await store.read('uploads/three'))).toString(), 'three');
});

test('moving an object out of a directory removes the directory it leaves empty', async (t) => {
  const { root, store } = await tempStore(t);
  await store.write('uploads/u1/chunk', streamOf(Buffer.from('data')));
  await store.move('uploads/u1/chunk', 'blobs/sha256/ab/abcd');
  const entries = await readdir(path.join(root, 'uploads')).catch(() => [] as string[]);
  t.deepEqual(entries, []);
  t.is((await readAll(await store.read('blobs/sha256/ab/abcd'))).toString(), 'data');
});

test('debris removal takes old temporary files and old empty upload directories, nothing else', async (t) => {
  const { root, store } = await tempStore(t);
  await store.write('uploads/live/chunk', streamOf(Buffer.from('kept')));
  await store.write('blobs/sha256/ab/abcd', streamOf(Buffer.from('blob')));
  const past = new Date(Date.now() - 3600_000);
  const oldTmp = path.join(root, '_tmp', 'cut-off-write');
  const newTmp = path.join(root, '_tmp', 'write-in-progress');
  await writeFile(oldTmp, randomBytes(100));
  await writeFile(newTmp, randomBytes(10));
  await utimes(oldTmp, past, past);
  for (const dir of ['old-empty', 'new-empty']) await mkdir(path.join(root, 'uploads', dir));
  await utimes(path.join(root, 'uploads', 'old-empty'), past, past);
  await utimes(path.join(root, 'uploads', 'live'), past, past);

  const cutoff = new Date(Date.now() - 60_000);
  t.deepEqual(await store.removeDebris(cutoff, { dryRun: true }), { files: 1, bytes: 100, directories: 1 });
  t.deepEqual((await readdir(path.join(root, '_tmp'))).sort(), ['cut-off-write', 'write-in-progress'], 'a dry run removes nothing');
  t.deepEqual(await store.removeDebris(cutoff), { files: 1, bytes: 100, directories: 1 });
  t.deepEqual(await readdir(path.join(root, '_tmp')), ['write-in-progress']);
  t.deepEqual((await readdir(path.join(root, 'uploads'))).sort(), ['live', 'new-empty']);
  t.is((await readAll(await store.read('uploads/live/chunk'))).toString(), 'kept');
  t.is((await readAll(await store.read('blobs/sha256/ab/abcd'))).toString(), 'blob');
});

test('a write of pieces smaller and larger than the sink’s 1 MiB buffers stores every byte in order', async (t) => {
  const { store } = await tempStore(t);
  const MiB = 1024 * 1024;
  const sizes = [1, 64 * 1024, MiB - 1, 3, 2 * MiB + 5, 7, MiB, 65_536, 1];
  const pieces = sizes.map((size) => randomBytes(size));
  await store.write('uploads/mixed', Readable.from(pieces, { objectMode: false }));
  const stored = await readAll(await store.read('uploads/mixed'));
  t.true(stored.equals(Buffer.concat(pieces)));
});

test('append writes in place from the given byte on, direct writes past an unaligned start included', async (t) => {
  const { store } = await tempStore(t);
  const head = randomBytes(5 * 1024 + 3);
  await store.write('a/one', streamOf(head));
  // 3 MiB in 64 KiB pieces: the sink's buffers go to the disk directly once past a 4 KiB boundary.
  const tail = randomBytes(3 * 1024 * 1024 + 17);
  t.is((await store.append('a/one', head.length, streamOf(tail)))?.size, head.length + tail.length);
  t.true((await readAll(await store.read('a/one'))).equals(Buffer.concat([head, tail])));
  await store.truncate('a/one', head.length);
  t.true((await readAll(await store.read('a/one'))).equals(head));
  await store.delete('a/one');
  await t.notThrowsAsync(store.truncate('a/one', 0), 'a missing object is not an error');
});

test('append neither writes nor reads its body unless the object is exactly as long as it was told', async (t) => {
  const { store } = await tempStore(t);
  await store.write('a/two', streamOf(Buffer.from('12345')));
  for (const [key, at] of [
    ['a/two', 4],
    ['a/two', 6],
    ['a/missing', 0],
  ] as const) {
    const body = streamOf(Buffer.from('more'));
    t.is(await store.append(key, at, body), undefined);
    t.is(body.readableFlowing, null, `the body of ${key}@${at} was not read`);
  }
  t.deepEqual(await readAll(await store.read('a/two')), Buffer.from('12345'));
  t.is(await store.stat('a/missing'), undefined);
  await t.throwsAsync(store.append('../x', 0, streamOf(Buffer.from('x'))), { instanceOf: InvalidStorageKeyError });
});
