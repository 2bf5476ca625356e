// The content-addressed layer over the filesystem store (the suite itself is shared with S3), then
// what only a store that appends in place does.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import type { BlobStore, InPlaceAppends } from '../../storage/blob-store.js';
import { createBlobs } from '../../storage/blobs.js';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { failingStream, streamOf } from '../conformance/blob-store.js';
import { assertBlob, blobsConformance, digest, writeChunks } from '../conformance/blobs.js';

blobsConformance(test, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-blobs-'));
  return {
    store: createFilesystemBlobStore({ rootDirectory: dir }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

// In-place appends (the filesystem store): when a chunk may go onto the end of an earlier one.
const KiB = 1024;

async function fixture(t: ExecutionContext): Promise<BlobStore & InPlaceAppends> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-appends-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return createFilesystemBlobStore({ rootDirectory: dir });
}

test('recorded chunks grow one object, which the commit renames into the blob without a copy', async (t) => {
  const store = await fixture(t);
  let writes = 0;
  const blobs = createBlobs({ ...store, write: (...args) => (writes++, store.write(...args)) });
  const parts = [randomBytes(64 * KiB), randomBytes(3), randomBytes(200 * KiB + 1)];
  const data = Buffer.concat(parts);
  const id = randomUUID();
  const chunks = await writeChunks(blobs, id, parts);
  t.deepEqual(
    chunks.map((c) => c.key),
    [chunks[0]!.key, chunks[0]!.key, chunks[0]!.key],
  );
  t.is(writes, 1, 'the first chunk is the only object written');
  await blobs.commit(id, chunks, digest(data));
  t.is(writes, 1, 'the commit renamed it');
  await assertBlob(t, blobs, digest(data), data);
});

test('a chunk not (yet) recorded is never appended to: its rival may win and it is removed', async (t) => {
  const store = await fixture(t);
  const a = createBlobs(store);
  const b = createBlobs(store);
  const id = randomUUID();
  const [first, rival, next] = [randomBytes(8 * KiB), randomBytes(8 * KiB), randomBytes(5 * KiB)];
  const lost = await a.writeChunk(id, 0, streamOf(first));
  const [won] = await writeChunks(b, id, [rival]);
  // `a` writes the next chunk before it learns that its first one lost: an object of its own.
  const [following] = await writeChunks(a, id, [next], 8 * KiB);
  t.not(following!.key, lost.key);
  await a.discardChunk(id, lost);
  const data = Buffer.concat([rival, next]);
  await a.commit(id, [won!, following!], digest(data));
  await assertBlob(t, a, digest(data), data);
});

test('a chunk written while another write of the upload runs here gets an object of its own', async (t) => {
  const store = await fixture(t);
  const blobs = createBlobs(store);
  const id = randomUUID();
  const first = randomBytes(4 * KiB);
  const [recorded] = await writeChunks(blobs, id, [first]);
  const slow = new PassThrough();
  const appending = blobs.writeChunk(id, first.length, slow);
  const rivalData = randomBytes(6 * KiB);
  const rival = await blobs.writeChunk(id, first.length, streamOf(rivalData));
  t.not(rival.key, recorded!.key);
  t.is(rival.appendedAt, undefined);
  slow.end(randomBytes(7 * KiB));
  const loser = await appending;
  t.is(loser.appendedAt, first.length);
  // The rival is recorded; the appended loser is cut off its object, which keeps the first chunk.
  blobs.chunkRecorded(id, rival);
  await blobs.discardChunk(id, loser);
  t.is((await store.stat(recorded!.key))?.size, first.length);
  const data = Buffer.concat([first, rivalData]);
  await blobs.commit(id, [recorded!, rival], digest(data));
  await assertBlob(t, blobs, digest(data), data);
});

test('an append whose body fails is cut off, and the next chunk appends where the last recorded one ended', async (t) => {
  const store = await fixture(t);
  const blobs = createBlobs(store);
  const id = randomUUID();
  const parts = [randomBytes(5 * KiB), randomBytes(9 * KiB)];
  const chunks = await writeChunks(blobs, id, [parts[0]!]);
  await t.throwsAsync(blobs.writeChunk(id, parts[0]!.length, failingStream(randomBytes(300 * KiB))), { message: /reset by test/ });
  t.is((await store.stat(chunks[0]!.key))?.size, parts[0]!.length);
  chunks.push(...(await writeChunks(blobs, id, [parts[1]!], parts[0]!.length)));
  t.is(chunks[1]!.key, chunks[0]!.key);
  const data = Buffer.concat(parts);
  await blobs.commit(id, chunks, digest(data));
  await assertBlob(t, blobs, digest(data), data);
});

// storage/scavenge.ts: a body's chunks are freed every few MiB, not once V8 notices 64 MiB of them.
// Serial, so it runs first and alone in this file: the process's byte count starts at zero and no
// other test's bodies add to it.
test.serial('an upload asks for a young-generation collection every 2 MiB of body passed on', async (t) => {
  const store = await fixture(t);
  const blobs = createBlobs(store);
  const asked: unknown[] = [];
  const exposed = globalThis.gc;
  globalThis.gc = ((options?: unknown) => void asked.push(options)) as NodeJS.GCFunction;
  t.teardown(() => {
    globalThis.gc = exposed;
  });
  const pieces = Array.from({ length: 20 * 16 }, () => randomBytes(64 * KiB));
  await blobs.writeChunk(randomUUID(), 0, Readable.from(pieces));
  t.deepEqual(
    asked,
    Array.from({ length: 10 }, () => ({ type: 'minor' })),
    '20 MiB: ten collections',
  );
});
