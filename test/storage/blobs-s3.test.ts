// The content-addressed layer over S3: the same suite as on the filesystem (chunks well below S3's
// 5 MiB part minimum, restarts, sha512, rival chunks), then uploads large enough to go up in parts.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import anyTest, { type TestFn } from 'ava';
import { createBlobs } from '../../storage/blobs.js';
import { parseDigest } from '../../storage/digest.js';
import { createS3BlobStore, S3_MIN_PART_SIZE } from '../../storage/s3-blob-store.js';
import { listAll } from '../conformance/blob-store.js';
import { assertBlob, blobsConformance, digest, upload, writeChunks } from '../conformance/blobs.js';
import { startS3rver, type TestS3 } from '../helpers/s3rver.js';

blobsConformance(anyTest, async () => {
  const s3 = await startS3rver();
  return { store: createS3BlobStore(s3.storeOptions({ rootDirectory: 'blobs-suite' })), cleanup: () => s3.close() };
});

// A server of its own, so the bytes it counts in parts are only this file's large uploads.
const test = anyTest.serial as TestFn<{ s3: TestS3 }>;
test.before(async (t) => {
  t.context.s3 = await startS3rver();
});
test.after.always(async (t) => {
  await t.context.s3?.close();
});

const KiB = 1024;
const MiB = 1024 * KiB;
const partSize = S3_MIN_PART_SIZE;

test('a 20 MiB chunk streams through to S3 in parts, never much more than a part ahead of the server', async (t) => {
  const { s3 } = t.context;
  const store = createS3BlobStore(s3.storeOptions({ rootDirectory: 'large-stream', partSize }));
  const blobs = createBlobs(store);
  const total = 20 * MiB;
  const hash = createHash('sha256');
  const before = s3.partBytesReceived();
  let produced = 0;
  let maxAhead = 0;
  // Generated on the fly: the test holds no copy either, and sees how far the store runs ahead.
  async function* body(): AsyncGenerator<Buffer> {
    while (produced < total) {
      const piece = randomBytes(256 * KiB);
      hash.update(piece);
      produced += piece.length;
      maxAhead = Math.max(maxAhead, produced - (s3.partBytesReceived() - before));
      yield piece;
    }
  }
  const id = randomUUID();
  const chunk = await blobs.writeChunk(id, 0, Readable.from(body(), { objectMode: false }));
  t.is(chunk.size, total);
  t.is(s3.partBytesReceived() - before, total, 'every byte went up as a part');
  // Buffering the whole blob would put it 20 MiB ahead; streaming holds one part and a little more.
  t.true(maxAhead <= partSize + MiB, `at most ${maxAhead} bytes were held before reaching the server`);

  const expected = parseDigest(`sha256:${hash.digest('hex')}`)!;
  t.teardown(() => blobs.delete(expected));
  t.deepEqual(await blobs.commit(id, [chunk], expected, { expectedSize: total }), { digest: expected.digest, size: total });
  const readBack = createHash('sha256');
  let size = 0;
  for await (const data of await blobs.open(expected)) {
    readBack.update(data as Buffer);
    size += (data as Buffer).length;
  }
  t.is(size, total);
  t.is(`sha256:${readBack.digest('hex')}`, expected.digest);
  t.deepEqual(await s3.incompleteUploads(s3.bucket), []);
});

test('a 20 MiB upload in chunks below 5 MiB, committed after a restart, is joined and hashed in parts', async (t) => {
  const { s3 } = t.context;
  const options = s3.storeOptions({ rootDirectory: 'large-chunks', partSize });
  const data = randomBytes(20 * MiB);
  const d = digest(data);
  const pieces = [0, 1, 2, 3, 4].map((i) => data.subarray(i * 4 * MiB, (i + 1) * 4 * MiB));
  const writer = createBlobs(createS3BlobStore(options));
  const id = upload(t, writer, d);
  const chunks = await writeChunks(writer, id, pieces);
  t.deepEqual(
    chunks.map((c) => c.size),
    pieces.map((p) => p.length),
  );

  // Another process (or this one restarted) has no running hash: it reads the chunks back once.
  const restarted = createBlobs(createS3BlobStore(options));
  const partsBefore = s3.partBytesReceived();
  t.deepEqual(await restarted.commit(id, chunks, d), { digest: d.digest, size: data.length });
  t.is(s3.partBytesReceived() - partsBefore, data.length, 'the joined copy went up in parts');
  await assertBlob(t, restarted, d, data);
  t.deepEqual(await listAll(createS3BlobStore(options), 'uploads/'), []);
  t.deepEqual(await s3.incompleteUploads(s3.bucket), []);
});
