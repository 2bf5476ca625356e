// The S3 store runs the one BlobStore suite against a real S3 server (s3rver on loopback), then the
// tests particular to S3: multipart uploads and copies, the root directory inside a shared bucket,
// bucket creation, malformed keys, presigned URLs.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import anyTest, { type TestFn } from 'ava';
import { DependencyUnavailableError, InvalidStorageKeyError, StorageNotFoundError } from '../../storage/errors.js';
import { createS3BlobStore, S3_MIN_PART_SIZE } from '../../storage/s3-blob-store.js';
import { parseEndpoint, rootPrefix } from '../../storage/s3-endpoint.js';
import { BAD_KEYS, blobStoreConformance, failingStream, listAll, readAll, streamOf } from '../conformance/blob-store.js';
import { randomBucketName, startS3rver, type TestS3 } from '../helpers/s3rver.js';

blobStoreConformance(anyTest, async () => {
  const s3 = await startS3rver();
  return { store: createS3BlobStore(s3.storeOptions({ rootDirectory: 'conformance' })), cleanup: () => s3.close() };
});

const test = anyTest as TestFn<{ s3: TestS3 }>;
test.before(async (t) => {
  t.context.s3 = await startS3rver();
});
test.after.always(async (t) => {
  await t.context.s3?.close();
});

const MiB = 1024 * 1024;

/** A store under a root directory of its own in the shared test bucket. */
function storeFor(s3: TestS3, overrides: Parameters<TestS3['storeOptions']>[0] = {}) {
  const options = s3.storeOptions({ rootDirectory: `t-${randomBytes(4).toString('hex')}`, ...overrides });
  const store = createS3BlobStore(options);
  /** Multipart uploads of this store left unfinished (tests run concurrently in one bucket). */
  const leftovers = () => s3.incompleteUploads(s3.bucket, rootPrefix(options.rootDirectory));
  return Object.assign(store, { leftovers });
}

test('malformed keys reach nothing in the bucket', async (t) => {
  // That every operation refuses them is the conformance suite's business; here, the bucket.
  const { s3 } = t.context;
  const store = storeFor(s3, { rootDirectory: 'keys' });
  await store.write('uploads/ok', streamOf(Buffer.from('ok')));
  for (const key of BAD_KEYS) {
    await t.throwsAsync(store.write(key, streamOf(Buffer.from('evil'))), { instanceOf: InvalidStorageKeyError }, JSON.stringify(key));
    await t.throwsAsync(store.move('uploads/ok', key), { instanceOf: InvalidStorageKeyError }, JSON.stringify(key));
  }
  // A list prefix whose last segment is not a partial key is refused here, unlike on a filesystem.
  await t.throwsAsync(listAll(store, 'a b'), { instanceOf: InvalidStorageKeyError });
  t.deepEqual(
    (await s3.objectNames()).filter((n) => n.startsWith('keys')),
    ['keys/uploads/ok'],
  );
  t.is((await readAll(await store.read('uploads/ok'))).toString(), 'ok');
  await store.delete('uploads/ok');
});

test('the root directory confines a store to its prefix of a shared bucket', async (t) => {
  const { s3 } = t.context;
  const a = storeFor(s3, { rootDirectory: '/shared/a/' });
  const b = storeFor(s3, { rootDirectory: 'shared/b' });
  const outside = 'shared/a-sibling/uploads/x';
  await s3.client.putObject(s3.bucket, outside, Buffer.from('not ours'));
  await a.write('uploads/x', streamOf(Buffer.from('a')));
  await b.write('uploads/x', streamOf(Buffer.from('b')));

  t.deepEqual(await listAll(a, ''), ['uploads/x']);
  t.deepEqual(await listAll(b, 'uploads/'), ['uploads/x']);
  t.is((await readAll(await a.read('uploads/x'))).toString(), 'a');
  t.is((await readAll(await b.read('uploads/x'))).toString(), 'b');
  const names = (await s3.objectNames()).filter((n) => n.startsWith('shared/'));
  t.deepEqual(names, ['shared/a-sibling/uploads/x', 'shared/a/uploads/x', 'shared/b/uploads/x']);

  await a.delete('uploads/x');
  t.is(await a.stat('uploads/x'), undefined);
  t.is((await b.stat('uploads/x'))?.size, 1);
  t.is((await s3.client.statObject(s3.bucket, outside)).size, 8, 'an object beside the root is untouched');
  await b.delete('uploads/x');
  await s3.client.removeObject(s3.bucket, outside);
});

test('root directories and endpoints are parsed as the Go registry writes them', (t) => {
  t.is(rootPrefix(''), '');
  t.is(rootPrefix('/'), '');
  t.is(rootPrefix('/registry'), 'registry/');
  t.is(rootPrefix('a/b/'), 'a/b/');
  for (const bad of ['a//b', '../x', 'a/./b', 'a b']) t.throws(() => rootPrefix(bad), { message: /root directory/ }, bad);

  t.deepEqual(parseEndpoint(undefined), { endPoint: 's3.amazonaws.com', useSSL: true, custom: false });
  t.deepEqual(parseEndpoint('http://127.0.0.1:9000'), { endPoint: '127.0.0.1', port: 9000, useSSL: false, custom: true });
  t.deepEqual(parseEndpoint('https://minio.local', false), { endPoint: 'minio.local', useSSL: true, custom: true });
  t.deepEqual(parseEndpoint('minio.local:9000', false), { endPoint: 'minio.local', port: 9000, useSSL: false, custom: true });
  t.deepEqual(parseEndpoint('minio.local:9000'), { endPoint: 'minio.local', port: 9000, useSSL: true, custom: true });
  t.throws(() => parseEndpoint('ftp://x'), { message: /http or https/ });
  t.throws(() => parseEndpoint('http://x/path'), { message: /scheme, host and port/ });
  t.throws(() => createS3BlobStore({ bucket: 'b', partSize: S3_MIN_PART_SIZE - 1 }), { message: /partSize/ });
});

test('a write larger than a part goes up in parts and leaves no multipart upload behind', async (t) => {
  const { s3 } = t.context;
  const store = storeFor(s3, { partSize: S3_MIN_PART_SIZE });
  const data = randomBytes(12 * MiB + 3);
  const written = await store.write('blobs/large', streamOf(data, 100_000));
  t.is(written.size, data.length);
  t.true((await readAll(await store.read('blobs/large'))).equals(data));
  t.true(
    (await readAll(await store.read('blobs/large', { start: 5 * MiB - 2, end: 5 * MiB + 1 }))).equals(
      data.subarray(5 * MiB - 2, 5 * MiB + 2),
    ),
  );
  t.deepEqual(await store.leftovers(), []);
  await store.delete('blobs/large');
});

test('a multipart write whose source fails is aborted: no object, no parts, the old object intact', async (t) => {
  const { s3 } = t.context;
  const store = storeFor(s3, { partSize: S3_MIN_PART_SIZE });
  const previous = randomBytes(1000);
  await store.write('uploads/x', streamOf(previous));
  // More than one part has gone up when the source fails.
  await t.throwsAsync(store.write('uploads/x', failingStream(randomBytes(11 * MiB))), { message: /reset by test/ });
  await t.throwsAsync(store.write('uploads/new', failingStream(randomBytes(6 * MiB))), { message: /reset by test/ });
  t.true((await readAll(await store.read('uploads/x'))).equals(previous));
  t.is(await store.stat('uploads/new'), undefined);
  t.deepEqual(await store.leftovers(), []);
  await store.delete('uploads/x');
});

test('a multipart write aborted by its signal between parts is aborted on the server too', async (t) => {
  const { s3 } = t.context;
  const store = storeFor(s3, { partSize: S3_MIN_PART_SIZE });
  const previous = randomBytes(10);
  await store.write('uploads/x', streamOf(previous));
  const controller = new AbortController();
  let sent = 0;
  async function* source(): AsyncGenerator<Buffer> {
    // Ends on its own after 40 MiB, so a store that ignores the signal fails rather than hangs.
    while (sent < 40 * MiB) {
      if (sent >= 7 * MiB) controller.abort();
      sent += MiB;
      yield randomBytes(MiB);
    }
  }
  await t.throwsAsync(store.write('uploads/x', Readable.from(source(), { objectMode: false }), { signal: controller.signal }), {
    name: 'AbortError',
  });
  t.true(sent < 20 * MiB, `the source was abandoned (${sent} bytes read)`);
  t.true((await readAll(await store.read('uploads/x'))).equals(previous));
  t.deepEqual(await store.leftovers(), []);
  await store.delete('uploads/x');
});

test('move copies large objects in parts on the server', async (t) => {
  const { s3 } = t.context;
  const store = storeFor(s3, { partSize: S3_MIN_PART_SIZE, multipartCopyThreshold: 0, multipartCopyPartSize: S3_MIN_PART_SIZE });
  const data = randomBytes(11 * MiB + 5);
  await store.write('uploads/from', streamOf(data, MiB));
  await store.move('uploads/from', 'blobs/to');
  t.is(await store.stat('uploads/from'), undefined);
  t.is((await store.stat('blobs/to'))?.size, data.length);
  t.true((await readAll(await store.read('blobs/to'))).equals(data));
  await t.throwsAsync(store.move('uploads/from', 'blobs/to'), { instanceOf: StorageNotFoundError });
  t.deepEqual(await store.leftovers(), []);
  await store.delete('blobs/to');
});

test('move of an object onto its own key keeps it', async (t) => {
  const store = storeFor(t.context.s3);
  await store.write('uploads/same', streamOf(Buffer.from('same')));
  await store.move('uploads/same', 'uploads/same');
  t.is((await readAll(await store.read('uploads/same'))).toString(), 'same');
  await store.delete('uploads/same');
});

test('a presigned URL fetches the object without credentials', async (t) => {
  const store = storeFor(t.context.s3);
  const data = randomBytes(3000);
  await store.write('blobs/signed', streamOf(data));
  const url = await store.presignedGetUrl('blobs/signed', 60);
  t.true(url.startsWith(`${t.context.s3.endpoint}/${t.context.s3.bucket}/`), url);
  t.regex(url, /X-Amz-Signature=/);
  const res = await fetch(url);
  t.is(res.status, 200);
  t.true(Buffer.from(await res.arrayBuffer()).equals(data));
  await store.delete('blobs/signed');
});

test('a missing bucket is an error unless the store may create it', async (t) => {
  const { s3 } = t.context;
  const bucket = randomBucketName();
  const strict = createS3BlobStore(s3.storeOptions({ bucket }));
  // The storage is unavailable (a 503 to clients), and the cause names the bucket.
  for (const attempt of [strict.stat('uploads/x'), strict.write('uploads/x', streamOf(Buffer.from('x')))]) {
    const err = await t.throwsAsync(attempt, { instanceOf: DependencyUnavailableError });
    t.is(err?.reason, 'bucket missing');
    t.regex(String(err?.cause), new RegExp(`bucket "${bucket}" does not exist`));
  }

  // Two replicas starting together both create it, and both work.
  const [one, two] = [0, 1].map(() => createS3BlobStore(s3.storeOptions({ bucket, createBucket: true, rootDirectory: 'r' })));
  await Promise.all([one!.write('uploads/a', streamOf(Buffer.from('a'))), two!.write('uploads/b', streamOf(Buffer.from('b')))]);
  t.deepEqual(await listAll(one!, ''), ['uploads/a', 'uploads/b']);
  t.true(await s3.client.bucketExists(bucket));
  // The strict store, asking again, now finds it.
  t.is((await strict.stat('r/uploads/a'))?.size, 1);
  await one!.delete('uploads/a');
  await one!.delete('uploads/b');
});

test('objects under the root with names no key can have are not listed', async (t) => {
  const { s3 } = t.context;
  const store = storeFor(s3, { rootDirectory: 'foreign' });
  await s3.client.putObject(s3.bucket, 'foreign/uploads/at@sign', Buffer.from('x'));
  await s3.client.putObject(s3.bucket, 'foreign/uploads/tilde~', Buffer.from('x'));
  await store.write('uploads/ok', streamOf(Buffer.from('ok')));
  t.deepEqual(await listAll(store, 'uploads/'), ['uploads/ok']);
  await store.delete('uploads/ok');
  for (const name of ['foreign/uploads/at@sign', 'foreign/uploads/tilde~']) await s3.client.removeObject(s3.bucket, name);
});
