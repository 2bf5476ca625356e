// The registry with its blobs on S3 (s3rver on loopback), selected by configuration as an operator
// would: push and pull through HTTP, byte for byte, and readiness that notices a missing bucket.
// A bucket that is missing or refuses the credentials is named in the log at start-up.
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { captureLog } from '../helpers/log-capture.js';
import { createClient, jsonBlob, type OciErrorBody } from '../helpers/oci-client.js';
import { blobOf, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { randomBucketName, startS3rver, type TestS3 } from '../helpers/s3rver.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn<{ s3: TestS3; registry: TestRegistry }>;

const MiB = 1024 * 1024;

test.before(async (t) => {
  t.context.s3 = await startS3rver();
  t.context.registry = await startTestRegistry({
    env: t.context.s3.registryEnv({
      REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/registry-under-test',
      // The smallest part S3 allows, so a modest blob already goes up in several parts.
      REGISTRY_STORAGE_S3_CHUNKSIZE: String(5 * MiB),
    }),
  });
});
test.after.always(async (t) => {
  await t.context.registry?.close();
  await t.context.s3?.close();
});

test('a multi-chunk blob and a manifest pushed over HTTP come back byte for byte from S3', async (t) => {
  const { s3, registry } = t.context;
  const client = createClient(registry.url);
  const name = 'team/s3/app';
  const layer = blobOf(randomBytes(7 * MiB + 123), OCI_LAYER);
  const config = jsonBlob({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, OCI_CONFIG);
  const manifest = jsonBlob(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: [{ mediaType: OCI_LAYER, digest: layer.digest, size: layer.size }],
    },
    OCI_MANIFEST,
  );

  // Chunks below S3's 5 MiB part minimum: each is an object of its own, joined at commit.
  t.is((await client.pushChunked(name, layer, 3 * MiB)).status, 201);
  t.is((await client.pushBlob(name, config)).status, 201);
  const put = await client.pushManifest(name, 'v1', manifest);
  t.is(put.status, 201);
  t.is(put.headers.get('docker-content-digest'), manifest.digest);

  const gotManifest = await client.getManifest(name, 'v1');
  t.is(gotManifest.status, 200);
  t.true(Buffer.from(await gotManifest.arrayBuffer()).equals(manifest.data));
  for (const blob of [layer, config]) {
    const got = await client.request(`/v2/${name}/blobs/${blob.digest}`);
    t.is(got.status, 200);
    t.is(got.headers.get('content-length'), String(blob.size));
    t.true(Buffer.from(await got.arrayBuffer()).equals(blob.data), `bytes of ${blob.digest}`);
  }
  const ranged = await client.request(`/v2/${name}/blobs/${layer.digest}`, { headers: { Range: 'bytes=5242870-5242889' } });
  t.is(ranged.status, 206);
  t.true(Buffer.from(await ranged.arrayBuffer()).equals(layer.data.subarray(5242870, 5242890)));

  // Everything is in the bucket under the root directory, no upload is left, and the filesystem
  // store was never used.
  const names = await s3.objectNames();
  t.true(
    names.every((n) => n.startsWith('registry-under-test/')),
    names.join(', '),
  );
  t.true(names.includes(`registry-under-test/blobs/sha256/${layer.digest.slice(7, 9)}/${layer.digest.slice(7)}`));
  t.false(
    names.some((n) => n.includes('/uploads/')),
    'no chunk object is left',
  );
  t.deepEqual(await s3.incompleteUploads(s3.bucket), []);
  await t.throwsAsync(access(path.join(registry.dataDir, 'storage')));
});

test('a layer pushed as one streamed PATCH, as docker does, goes up to S3 in parts', async (t) => {
  const { s3, registry } = t.context;
  const name = 'team/s3/streamed';
  const layer = blobOf(randomBytes(12 * MiB + 5), OCI_LAYER);
  const before = s3.partBytesReceived();
  const started = await fetch(`${registry.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
  t.is(started.status, 202);
  const location = started.headers.get('location')!;
  const patched = await fetch(`${registry.url}${location}`, {
    method: 'PATCH',
    body: new Uint8Array(layer.data),
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  t.is(patched.status, 202);
  const done = await fetch(`${registry.url}${patched.headers.get('location')!}?digest=${layer.digest}`, { method: 'PUT' });
  t.is(done.status, 201);
  t.true(s3.partBytesReceived() - before >= layer.size, 'the chunk went up as a multipart upload');

  const got = await fetch(`${registry.url}/v2/${name}/blobs/${layer.digest}`);
  t.is(got.status, 200);
  t.true(Buffer.from(await got.arrayBuffer()).equals(layer.data));
});

test('readiness answers through S3 and fails while the bucket is missing', async (t) => {
  const { s3, registry } = t.context;
  t.is((await fetch(`${registry.url}/readyz`)).status, 200);

  const bucket = randomBucketName();
  const logs = captureLog();
  const missing = await startTestRegistry({ log: logs.log, env: s3.registryEnv({ REGISTRY_STORAGE_S3_BUCKET: bucket }) });
  t.teardown(() => missing.close());
  const res = await fetch(`${missing.url}/readyz`);
  t.is(res.status, 503);
  t.deepEqual(((await res.json()) as OciErrorBody).errors[0]!.detail, { database: 'ok', storage: 'bucket missing' });
  // A push says why instead of 500 UNKNOWN, and the log named the bucket at start-up.
  const push = await createClient(missing.url).pushBlob('no/bucket', blobOf(randomBytes(100), 'application/octet-stream'));
  t.is(push.status, 503);
  t.is(
    ((await push.json()) as OciErrorBody).errors[0]!.message,
    "the registry's blob storage is unavailable (bucket missing); try again later",
  );
  const named = logs.withMessage('blob storage unavailable: requests that need it answer 503 until it is back');
  t.is(named.length, 1);
  t.like(named[0], { reason: 'bucket missing', bucket, endpoint: s3.endpoint });
  t.regex(String(named[0]?.cause), /does not exist/);
});

test('storage refusing the credentials is named in the log at start-up, and pushes say so', async (t) => {
  const { s3 } = t.context;
  const logs = captureLog();
  // (s3rver checks the access key, not the signature, on a HEAD.)
  const refused = await startTestRegistry({
    log: logs.log,
    env: s3.registryEnv({ REGISTRY_STORAGE_S3_ACCESSKEY: 'NOBODY', REGISTRY_STORAGE_S3_SECRETKEY: 'not-the-secret' }),
  });
  t.teardown(() => refused.close());
  t.true(
    await until(() => logs.withMessage('blob storage unavailable: requests that need it answer 503 until it is back').length > 0, 10_000),
  );
  t.like(logs.withMessage('blob storage unavailable: requests that need it answer 503 until it is back')[0], {
    reason: 'access denied',
    bucket: s3.bucket,
  });
  t.notRegex(JSON.stringify(logs.lines), /not-the-secret/);
  const push = await createClient(refused.url).pushBlob('no/access', blobOf(randomBytes(100), 'application/octet-stream'));
  t.is(push.status, 503);
  t.is(((await push.json()) as OciErrorBody).errors[0]!.code, 'UNAVAILABLE');
});

test('with createbucket the registry makes its bucket and serves from it', async (t) => {
  const { s3 } = t.context;
  const bucket = randomBucketName();
  const registry = await startTestRegistry({
    env: s3.registryEnv({ REGISTRY_STORAGE_S3_BUCKET: bucket, REGISTRY_STORAGE_S3_CREATEBUCKET: 'true' }),
  });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const blob = blobOf(randomBytes(1000), 'application/octet-stream');
  t.is((await client.pushBlob('created/bucket', blob)).status, 201);
  t.true(await s3.client.bucketExists(bucket));
  t.true((await s3.objectNames(bucket)).some((n) => n.endsWith(blob.digest.slice(7))));
});

test('a whole-blob GET is redirected to a presigned S3 URL (307), ranged reads are served directly', async (t) => {
  const client = createClient(t.context.registry.url);
  const blob = blobOf(randomBytes(100_000), 'application/octet-stream');
  t.is((await client.pushBlob('s3/redirect', blob)).status, 201);
  const res = await client.request(`/v2/s3/redirect/blobs/${blob.digest}`, { redirect: 'manual' });
  t.is(res.status, 307);
  const location = res.headers.get('location') ?? '';
  t.regex(location, /X-Amz-Signature=/);
  // The presigned URL itself serves the bytes, without registry credentials.
  t.deepEqual(Buffer.from(await (await fetch(location)).arrayBuffer()), blob.data);
  const ranged = await client.request(`/v2/s3/redirect/blobs/${blob.digest}`, { redirect: 'manual', headers: { Range: 'bytes=10-19' } });
  t.is(ranged.status, 206);
  t.deepEqual(Buffer.from(await ranged.arrayBuffer()), blob.data.subarray(10, 20));

  const direct = await startTestRegistry({
    env: t.context.s3.registryEnv({ REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/registry-under-test', REGISTRY_STORAGE_REDIRECT_DISABLE: 'true' }),
  });
  t.teardown(() => direct.close());
  const directClient = createClient(direct.url);
  await directClient.pushBlob('s3/redirect', blob);
  const served = await directClient.request(`/v2/s3/redirect/blobs/${blob.digest}`, { redirect: 'manual' });
  t.is(served.status, 200);
  t.deepEqual(Buffer.from(await served.arrayBuffer()), blob.data);
});
