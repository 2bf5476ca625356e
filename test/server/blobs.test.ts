import { randomBytes } from 'node:crypto';
import { readdir, readlink, stat, truncate } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import test from 'ava';
import { parseDigest } from '../../storage/digest.js';
import { blobKey } from '../../storage/paths.js';
import { createClient, errorCode } from '../helpers/oci-client.js';
import { heldRequest } from '../helpers/raw-http.js';
import { blobOf, sha256 } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { until } from '../helpers/wait.js';

let registry: TestRegistry;
let client: ReturnType<typeof createClient>;
test.before(async () => {
  registry = await startTestRegistry();
  client = createClient(registry.url);
});
test.after.always(() => registry?.close());

const repo = (t: { title: string }): string => `blobs/${sha256(t.title).slice(7, 19)}`;
const randomBlob = (size = 4096) => blobOf(randomBytes(size), 'application/octet-stream');

test('monolithic upload: 201 with Location and digest, then GET returns the bytes', async (t) => {
  const name = repo(t);
  const blob = randomBlob();
  const res = await client.pushBlob(name, blob);
  t.is(res.status, 201);
  t.is(res.headers.get('location'), `/v2/${name}/blobs/${blob.digest}`);
  t.is(res.headers.get('docker-content-digest'), blob.digest);

  const got = await client.request(`/v2/${name}/blobs/${blob.digest}`);
  t.is(got.status, 200);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
  t.is(got.headers.get('content-length'), String(blob.size));
  t.is(got.headers.get('docker-content-digest'), blob.digest);
  t.is(got.headers.get('etag'), `"${blob.digest}"`);
  t.regex(got.headers.get('cache-control') ?? '', /max-age=31536000/);
  t.is(got.headers.get('accept-ranges'), 'bytes');
});

test('HEAD of a blob: length and digest, no body; a miss is 404', async (t) => {
  const name = repo(t);
  const blob = randomBlob(1234);
  await client.pushBlob(name, blob);
  const head = await client.request(`/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers.get('content-length'), '1234');
  t.is(await head.text(), '');
  const miss = await client.request(`/v2/${name}/blobs/${randomBlob().digest}`, { method: 'HEAD' });
  t.is(miss.status, 404);
});

test('a blob belongs to a repository only once pushed there', async (t) => {
  const blob = randomBlob();
  await client.pushBlob(`${repo(t)}/one`, blob);
  const other = await client.request(`/v2/${repo(t)}/two/blobs/${blob.digest}`);
  t.is(other.status, 404);
  t.is(await errorCode(other), 'BLOB_UNKNOWN');
});

test('chunked upload with Content-Range, status in between, then PUT', async (t) => {
  const name = repo(t);
  const blob = randomBlob(10_000);
  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  t.is(start.status, 202);
  t.is(start.headers.get('range'), '0-0');
  const uuid = start.headers.get('docker-upload-uuid');
  t.truthy(uuid);
  let location = start.headers.get('location')!;
  t.is(location, `/v2/${name}/blobs/uploads/${uuid}`);

  const first = await client.request(location, {
    method: 'PATCH',
    body: new Uint8Array(blob.data.subarray(0, 4000)),
    headers: { 'Content-Range': '0-3999' },
  });
  t.is(first.status, 202);
  t.is(first.headers.get('range'), '0-3999');
  location = first.headers.get('location')!;

  const status = await client.request(location);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), '0-3999');
  t.is(status.headers.get('docker-upload-uuid'), uuid);

  // Out of order: the next chunk must start at 4000.
  const wrong = await client.request(location, {
    method: 'PATCH',
    body: new Uint8Array(blob.data.subarray(5000, 6000)),
    headers: { 'Content-Range': '5000-5999' },
  });
  t.is(wrong.status, 416);
  t.is(await errorCode(wrong), 'RANGE_INVALID');

  const second = await client.request(location, {
    method: 'PATCH',
    body: new Uint8Array(blob.data.subarray(4000, 8000)),
    headers: { 'Content-Range': '4000-7999' },
  });
  t.is(second.status, 202);
  t.is(second.headers.get('range'), '0-7999');
  // The last bytes come with the closing PUT.
  const done = await client.request(`${second.headers.get('location')}?digest=${blob.digest}`, {
    method: 'PUT',
    body: new Uint8Array(blob.data.subarray(8000)),
  });
  t.is(done.status, 201);
  const got = await client.request(`/v2/${name}/blobs/${blob.digest}`);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
  // The session is gone.
  t.is((await client.request(location)).status, 404);
});

test('one streamed PATCH with chunked transfer encoding and no Content-Range (docker, skopeo)', async (t) => {
  const name = repo(t);
  const parts = Array.from({ length: 20 }, () => randomBytes(64 * 1024));
  const data = Buffer.concat(parts);
  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const url = new URL(start.headers.get('location')!, registry.url);
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request(url, { method: 'PATCH', headers: { 'Content-Type': 'application/octet-stream' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    for (const part of parts) req.write(part);
    req.end();
  });
  t.is(status, 202);
  const done = await client.request(`${url.pathname}?digest=${sha256(data)}`, { method: 'PUT' });
  t.is(done.status, 201);
  const head = await client.request(`/v2/${name}/blobs/${sha256(data)}`, { method: 'HEAD' });
  t.is(head.headers.get('content-length'), String(data.length));
});

test('a wrong digest is DIGEST_INVALID, stores nothing and ends the session', async (t) => {
  const name = repo(t);
  const blob = randomBlob();
  const claimed = randomBlob().digest;
  const res = await client.pushBlob(name, { data: blob.data, digest: claimed });
  t.is(res.status, 400);
  t.is(await errorCode(res), 'DIGEST_INVALID');
  t.is((await client.request(`/v2/${name}/blobs/${claimed}`, { method: 'HEAD' })).status, 404);
  t.is((await client.request(`/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);

  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = start.headers.get('location')!;
  const put = await client.request(`${location}?digest=${claimed}`, { method: 'PUT', body: new Uint8Array(blob.data) });
  t.is(put.status, 400);
  t.is((await client.request(location)).status, 404);
});

test('claiming the digest of a stored blob with other bytes does not link it', async (t) => {
  const secret = randomBlob();
  await client.pushBlob(`${repo(t)}/private`, secret);
  const res = await client.pushBlob(`${repo(t)}/attacker`, { data: randomBytes(10), digest: secret.digest });
  t.is(res.status, 400);
  t.is((await client.request(`/v2/${repo(t)}/attacker/blobs/${secret.digest}`)).status, 404);
});

test('PUT without a digest, or with a malformed one, is DIGEST_INVALID', async (t) => {
  const name = repo(t);
  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = start.headers.get('location')!;
  for (const suffix of ['', '?digest=sha256:nothex']) {
    const res = await client.request(`${location}${suffix}`, { method: 'PUT' });
    t.is(res.status, 400);
    t.is(await errorCode(res), 'DIGEST_INVALID');
  }
});

test('cancel with DELETE: 204, then the session is unknown', async (t) => {
  const name = repo(t);
  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = start.headers.get('location')!;
  await client.request(location, { method: 'PATCH', body: 'abc' });
  t.is((await client.request(location, { method: 'DELETE' })).status, 204);
  const again = await client.request(location, { method: 'PATCH', body: 'def' });
  t.is(again.status, 404);
  t.is(await errorCode(again), 'BLOB_UPLOAD_UNKNOWN');
});

test('an upload session of one repository is unknown in another', async (t) => {
  const start = await client.request(`/v2/${repo(t)}/a/blobs/uploads/`, { method: 'POST' });
  const uuid = start.headers.get('docker-upload-uuid');
  const res = await client.request(`/v2/${repo(t)}/b/blobs/uploads/${uuid}`);
  t.is(res.status, 404);
});

test('Range requests: 206 with Content-Range, suffix ranges, 416 when unsatisfiable', async (t) => {
  const name = repo(t);
  const blob = randomBlob(1000);
  await client.pushBlob(name, blob);
  const path = `/v2/${name}/blobs/${blob.digest}`;
  const part = await client.request(path, { headers: { Range: 'bytes=100-199' } });
  t.is(part.status, 206);
  t.is(part.headers.get('content-range'), 'bytes 100-199/1000');
  t.deepEqual(Buffer.from(await part.arrayBuffer()), blob.data.subarray(100, 200));
  const suffix = await client.request(path, { headers: { Range: 'bytes=-10' } });
  t.is(suffix.status, 206);
  t.deepEqual(Buffer.from(await suffix.arrayBuffer()), blob.data.subarray(990));
  const open = await client.request(path, { headers: { Range: 'bytes=900-' } });
  t.deepEqual(Buffer.from(await open.arrayBuffer()), blob.data.subarray(900));
  const bad = await client.request(path, { headers: { Range: 'bytes=5000-6000' } });
  t.is(bad.status, 416);
  t.is(bad.headers.get('content-range'), 'bytes */1000');
});

test('Range as RFC 9110 reads it: a long suffix is the whole blob, an invalid range is ignored', async (t) => {
  const name = repo(t);
  const blob = randomBlob(1000);
  await client.pushBlob(name, blob);
  const path = `/v2/${name}/blobs/${blob.digest}`;
  // [Range, status, Content-Range (206) or undefined, first byte, last byte]
  const cases: [string, number, string | undefined, number, number][] = [
    // §14.1.2: a suffix longer than the representation selects all of it.
    ['bytes=-99999999', 206, 'bytes 0-999/1000', 0, 999],
    ['bytes=-1000', 206, 'bytes 0-999/1000', 0, 999],
    ['bytes=0-99999999999999999999', 206, 'bytes 0-999/1000', 0, 999],
    ['BYTES=999-', 206, 'bytes 999-999/1000', 999, 999],
    ['bytes=0-10, 5-20', 206, 'bytes 0-20/1000', 0, 20],
    ['bytes=0-10, 5000-', 206, 'bytes 0-10/1000', 0, 10],
    // Invalid: last before first, broken syntax, another unit, an empty set. Ignored: 200, all of it.
    ['bytes=5-1', 200, undefined, 0, 999],
    ['bytes=abc', 200, undefined, 0, 999],
    ['bytes=--5', 200, undefined, 0, 999],
    ['bytes=1-2-3', 200, undefined, 0, 999],
    ['bytes=', 200, undefined, 0, 999],
    ['items=0-1', 200, undefined, 0, 999],
    ['bytes=0-5, 9-3', 200, undefined, 0, 999],
    // Several ranges with a gap: the whole blob, as a server may always answer.
    ['bytes=0-1, 10-11', 200, undefined, 0, 999],
  ];
  for (const [range, status, contentRange, first, last] of cases) {
    const res = await client.request(path, { headers: { Range: range } });
    t.is(res.status, status, range);
    t.is(res.headers.get('content-range') ?? undefined, contentRange, range);
    t.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data.subarray(first, last + 1), range);
    const head = await client.request(path, { method: 'HEAD', headers: { Range: range } });
    t.is(head.status, status, `HEAD ${range}`);
    t.is(head.headers.get('content-length'), String(last - first + 1), `HEAD ${range}`);
  }
  // Unsatisfiable: every first position at or past the end, or a zero-length suffix.
  for (const range of ['bytes=1000-', 'bytes=1000-2000', 'bytes=-0', 'bytes=1000-1001, 2000-']) {
    const res = await client.request(path, { headers: { Range: range } });
    t.is(res.status, 416, range);
    t.is(res.headers.get('content-range'), 'bytes */1000', range);
    t.is(await errorCode(res), 'RANGE_INVALID', range);
  }
});

test('If-None-Match with the ETag is 304', async (t) => {
  const name = repo(t);
  const blob = randomBlob();
  await client.pushBlob(name, blob);
  const res = await client.request(`/v2/${name}/blobs/${blob.digest}`, { headers: { 'If-None-Match': `"${blob.digest}"` } });
  t.is(res.status, 304);
});

test('zero-length and sha512 blobs', async (t) => {
  const name = repo(t);
  const empty = blobOf(Buffer.alloc(0), 'application/octet-stream');
  t.is((await client.pushBlob(name, empty)).status, 201);
  const got = await client.request(`/v2/${name}/blobs/${empty.digest}`);
  t.is(got.status, 200);
  t.is((await got.arrayBuffer()).byteLength, 0);

  const data = randomBytes(3000);
  const { createHash } = await import('node:crypto');
  const digest = `sha512:${createHash('sha512').update(data).digest('hex')}`;
  t.is((await client.pushBlob(name, { data, digest })).status, 201);
  const back = await client.request(`/v2/${name}/blobs/${digest}`);
  t.deepEqual(Buffer.from(await back.arrayBuffer()), data);
});

test('cross-repository mount: 201 when the source has it, a 202 session otherwise', async (t) => {
  const blob = randomBlob();
  await client.pushBlob(`${repo(t)}/src`, blob);
  const mounted = await client.request(`/v2/${repo(t)}/dst/blobs/uploads/?mount=${blob.digest}&from=${repo(t)}/src`, {
    method: 'POST',
  });
  t.is(mounted.status, 201);
  t.is(mounted.headers.get('location'), `/v2/${repo(t)}/dst/blobs/${blob.digest}`);
  t.is((await client.request(`/v2/${repo(t)}/dst/blobs/${blob.digest}`, { method: 'HEAD' })).status, 200);

  const missing = randomBlob();
  const fallback = await client.request(`/v2/${repo(t)}/dst/blobs/uploads/?mount=${missing.digest}&from=${repo(t)}/src`, {
    method: 'POST',
  });
  t.is(fallback.status, 202);
  t.truthy(fallback.headers.get('docker-upload-uuid'));
});

test('DELETE of a blob unlinks it from the repository', async (t) => {
  const name = repo(t);
  const blob = randomBlob();
  await client.pushBlob(name, blob);
  const del = await client.request(`/v2/${name}/blobs/${blob.digest}`, { method: 'DELETE' });
  t.is(del.status, 202);
  t.is((await client.request(`/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);
  const again = await client.request(`/v2/${name}/blobs/${blob.digest}`, { method: 'DELETE' });
  t.is(again.status, 404);
  t.is(await errorCode(again), 'BLOB_UNKNOWN');
});

test('an upload resumes after the server restarts', async (t) => {
  const dataDir = registry.dataDir;
  const first = await startTestRegistry({ dataDir: `${dataDir}-restart` });
  const name = repo(t);
  const blob = randomBlob(50_000);
  const c1 = createClient(first.url);
  const start = await c1.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = start.headers.get('location')!;
  await c1.request(location, {
    method: 'PATCH',
    body: new Uint8Array(blob.data.subarray(0, 20_000)),
    headers: { 'Content-Range': '0-19999' },
  });
  await first.close();

  const second = await startTestRegistry({ dataDir: `${dataDir}-restart` });
  t.teardown(async () => {
    await second.close();
    const { rm } = await import('node:fs/promises');
    await rm(`${dataDir}-restart`, { recursive: true, force: true });
  });
  const c2 = createClient(second.url);
  const status = await c2.request(location);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), '0-19999');
  const patch = await c2.request(location, {
    method: 'PATCH',
    body: new Uint8Array(blob.data.subarray(20_000)),
    headers: { 'Content-Range': `20000-${blob.size - 1}` },
  });
  t.is(patch.status, 202);
  const done = await c2.request(`${location}?digest=${blob.digest}`, { method: 'PUT' });
  t.is(done.status, 201);
  const got = await c2.request(`/v2/${name}/blobs/${blob.digest}`);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
});

test('finished and cancelled uploads leave no objects behind', async (t) => {
  const { readdir } = await import('node:fs/promises');
  const path = await import('node:path');
  const name = repo(t);
  const blob = randomBlob(9000);
  t.is((await client.pushChunked(name, blob, 4000)).status, 201);
  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = start.headers.get('location')!;
  await client.request(location, { method: 'PATCH', body: 'abc' });
  await client.request(location, { method: 'DELETE' });
  const uploads = await readdir(path.join(registry.dataDir, 'storage', 'uploads')).catch(() => [] as string[]);
  const id = start.headers.get('docker-upload-uuid')!;
  t.deepEqual(
    uploads.filter((entry) => entry.startsWith(id)),
    [],
    'the cancelled upload left objects behind',
  );
  // No upload of this test remains at all (other tests may have sessions open).
  t.true(uploads.length < 20, `${uploads.length} upload objects remain`);
});

test('every way of pushing a blob leaves no upload object behind', async (t) => {
  const name = repo(t);
  const uploads = path.join(registry.dataDir, 'storage', 'uploads');
  const ids: string[] = [];
  const start = async (): Promise<string> => {
    const res = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
    ids.push(res.headers.get('docker-upload-uuid')!);
    return res.headers.get('location')!;
  };
  // docker and containers/image: one PATCH with the whole blob, then a PUT without a body.
  const streamed = randomBlob(5000);
  let location = await start();
  const patched = await client.request(location, { method: 'PATCH', body: new Uint8Array(streamed.data) });
  t.is(patched.status, 202);
  t.is((await client.request(`${patched.headers.get('location')}?digest=${streamed.digest}`, { method: 'PUT' })).status, 201);
  // The whole blob in the closing PUT.
  const closing = randomBlob(3000);
  location = await start();
  t.is((await client.request(`${location}?digest=${closing.digest}`, { method: 'PUT', body: new Uint8Array(closing.data) })).status, 201);
  // A chunk, then the rest in the closing PUT.
  const split = randomBlob(6000);
  location = await start();
  const first = await client.request(location, { method: 'PATCH', body: new Uint8Array(split.data.subarray(0, 2500)) });
  const rest = await client.request(`${first.headers.get('location')}?digest=${split.digest}`, {
    method: 'PUT',
    body: new Uint8Array(split.data.subarray(2500)),
  });
  t.is(rest.status, 201);
  for (const blob of [streamed, closing, split])
    t.deepEqual(Buffer.from(await (await client.request(`/v2/${name}/blobs/${blob.digest}`)).arrayBuffer()), blob.data);
  const left = await readdir(uploads).catch(() => [] as string[]);
  t.deepEqual(
    left.filter((entry) => ids.some((id) => entry.startsWith(id))),
    [],
  );
});

test('a closing PUT ends the session also when its body does not match the digest', async (t) => {
  const name = repo(t);
  const blob = randomBlob(2000);
  const res = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = res.headers.get('location')!;
  const wrong = await client.request(`${location}?digest=${blob.digest}`, { method: 'PUT', body: new Uint8Array(randomBlob(2000).data) });
  t.is(wrong.status, 400);
  t.is((await client.request(location)).status, 404, 'the session is over, as in distribution');
  t.is((await client.request(`/v2/${name}/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);
  const uploads = await readdir(path.join(registry.dataDir, 'storage', 'uploads')).catch(() => [] as string[]);
  t.deepEqual(
    uploads.filter((entry) => entry.startsWith(res.headers.get('docker-upload-uuid')!)),
    [],
  );
});

function blobFile(digest: string): string {
  return path.join(registry.config.storage.filesystem.rootdirectory, blobKey(parseDigest(digest)!));
}

/** Whether this process holds the file open (the registry under test runs in it). */
async function isOpen(file: string): Promise<boolean> {
  for (const fd of await readdir('/proc/self/fd')) {
    if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === file) return true;
  }
  return false;
}

test('a large blob and ranges across the sender’s buffer boundaries arrive byte-exact', async (t) => {
  const name = repo(t);
  // The sender reads 64 KiB at a time until the socket has taken 16 MiB, then 1 MiB
  // (server/send-object.ts): ranges start and end on either side of those boundaries.
  const KIB = 1024;
  const MIB = 1024 * KIB;
  const blob = randomBlob(18 * MIB + 123);
  await client.pushBlob(name, blob);
  const whole = await client.request(`/v2/${name}/blobs/${blob.digest}`);
  t.is(whole.headers.get('content-length'), String(blob.size));
  t.true(Buffer.from(await whole.arrayBuffer()).equals(blob.data));
  for (const [start, end] of [
    [64 * KIB - 1, 64 * KIB],
    [MIB - 1, MIB],
    [100, 2_500_000],
    [MIB + 5, 17 * MIB + 7],
    [16 * MIB - 1, 17 * MIB],
    [blob.size - 1_100_000, blob.size - 1],
  ] as const) {
    const part = await client.request(`/v2/${name}/blobs/${blob.digest}`, { headers: { Range: `bytes=${start}-${end}` } });
    t.is(part.status, 206);
    t.true(Buffer.from(await part.arrayBuffer()).equals(blob.data.subarray(start, end + 1)), `${start}-${end}`);
  }
});

test('a client that leaves mid-pull: the blob file is closed and the next pull is complete', async (t) => {
  const name = repo(t);
  const blob = randomBlob(16 * 1024 * 1024);
  await client.pushBlob(name, blob);
  // A handle left open is closed by the garbage collector at some point, with this warning.
  const collected: string[] = [];
  const onWarning = (warning: Error): void => void (/on garbage collection/.test(warning.message) && collected.push(warning.message));
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  const url = new URL(`/v2/${name}/blobs/${blob.digest}`, registry.url);
  await new Promise<void>((resolve, reject) => {
    const req = http.get(url, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
  });
  const file = blobFile(blob.digest);
  t.true(await until(async () => !(await isOpen(file)), 5000), 'the registry still holds the blob file open');
  t.deepEqual(collected, [], 'the blob file was left to the garbage collector');
  const again = await client.request(url.pathname);
  t.true(Buffer.from(await again.arrayBuffer()).equals(blob.data));
});

test('a blob file cut short on disk: the response is cut short too, never padded, and the registry keeps serving', async (t) => {
  const name = repo(t);
  // Cut after the sender's first 1 MiB buffer, so the headers and some bytes have gone out.
  const blob = randomBlob(3 * 1024 * 1024);
  await client.pushBlob(name, blob);
  await truncate(blobFile(blob.digest), 1_500_000);
  const res = await client.request(`/v2/${name}/blobs/${blob.digest}`);
  t.is(res.headers.get('content-length'), String(blob.size));
  await t.throwsAsync(res.arrayBuffer(), undefined, 'the body ended early, so the client sees a failed transfer');
  const other = randomBlob(2000);
  await client.pushBlob(name, other);
  const ok = await client.request(`/v2/${name}/blobs/${other.digest}`);
  t.deepEqual(Buffer.from(await ok.arrayBuffer()), other.data);
});

// Serial: the only upload streaming while it runs, so the one temporary file is its body's.
test.serial('a PATCH whose session is cancelled while its body streams in is BLOB_UPLOAD_UNKNOWN, and stores nothing', async (t) => {
  const name = repo(t);
  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  const location = new URL(start.headers.get('location')!, registry.url);
  const req = heldRequest(location, 'PATCH', { 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' });
  // More than the file sink buffers (storage/file-sink.ts): some of it reaches the file.
  req.write(randomBytes(3 * 1024 * 1024));
  // The handler found the session and streams the body into a temporary file.
  const storage = path.join(registry.dataDir, 'storage');
  const streaming = async (): Promise<boolean> => {
    for (const entry of await readdir(path.join(storage, '_tmp')).catch(() => [] as string[])) {
      if (((await stat(path.join(storage, '_tmp', entry)).catch(() => undefined))?.size ?? 0) > 0) return true;
    }
    return false;
  };
  t.true(await until(streaming, 10_000), 'the body never reached storage');
  t.is((await client.request(location.pathname, { method: 'DELETE' })).status, 204);
  req.end(randomBytes(1024));
  const res = await req.answered;
  t.is(res.status, 404, res.body);
  t.is((JSON.parse(res.body) as { errors: { code: string }[] }).errors[0]!.code, 'BLOB_UPLOAD_UNKNOWN');
  const id = start.headers.get('docker-upload-uuid')!;
  const left = (await readdir(path.join(storage, 'uploads')).catch(() => [] as string[])).filter((entry) => entry.startsWith(id));
  t.deepEqual(left, [], 'the cancelled upload left objects behind');
});

test('a PATCH still appending when a PUT completes the upload never writes into the published blob', async (t) => {
  const name = repo(t);
  const first = randomBytes(300_000);
  const digest = sha256(first);
  const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
  let location = new URL(start.headers.get('location')!, registry.url);
  const patched = await client.request(location.pathname + location.search, { method: 'PATCH', body: new Uint8Array(first) });
  t.is(patched.status, 202);
  location = new URL(patched.headers.get('location')!, registry.url);
  // A second PATCH whose body is held back: it opens the first chunk's object to append to it.
  const id = start.headers.get('docker-upload-uuid')!;
  const uploads = path.join(registry.config.storage.filesystem.rootdirectory, 'uploads');
  const appending = async (): Promise<boolean> => {
    for (const entry of await readdir(uploads).catch(() => [] as string[]))
      if (entry.startsWith(id) && (await isOpen(path.join(uploads, entry)))) return true;
    return false;
  };
  const extra = 4 * 1024 * 1024;
  const req = heldRequest(location, 'PATCH', { 'Content-Type': 'application/octet-stream', 'Content-Length': String(extra) });
  t.true(await until(appending, 10_000), 'the second PATCH never opened the upload object');
  const put = await client.request(`${location.pathname}${location.search ? `${location.search}&` : '?'}digest=${digest}`, {
    method: 'PUT',
  });
  t.is(put.status, 201);
  req.end(Buffer.alloc(extra, 0x41));
  t.is((await req.answered).status, 404, 'the late PATCH of a finished upload');
  // The published file is the blob, byte for byte: nothing of the late body reached it.
  const { readFile } = await import('node:fs/promises');
  const stored = await readFile(blobFile(digest));
  t.is(stored.length, first.length);
  t.is(sha256(stored), digest);
  const pulled = await client.request(`/v2/${name}/blobs/${digest}`);
  t.true(Buffer.from(await pulled.arrayBuffer()).equals(first));
});

test('two PUTs finishing one session at once: one blob is linked, the other is told the session is gone', async (t) => {
  const name = repo(t);
  let bothLinked = 0;
  for (let round = 0; round < 10; round++) {
    const start = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
    const head = randomBytes(512 * 1024);
    const patched = await client.request(start.headers.get('location')!, { method: 'PATCH', body: new Uint8Array(head) });
    const location = patched.headers.get('location')!;
    const endings = [randomBytes(256 * 1024), randomBytes(256 * 1024)];
    const answers = await Promise.all(
      endings.map((ending) =>
        client.request(`${location}?digest=${sha256(Buffer.concat([head, ending]))}`, { method: 'PUT', body: new Uint8Array(ending) }),
      ),
    );
    const statuses = answers.map((a) => a.status).sort();
    if (statuses[0] === 201 && statuses[1] === 201) bothLinked += 1;
    else t.deepEqual(statuses, [201, 404], `round ${round}`);
    for (const [i, answer] of answers.entries()) {
      const digest = sha256(Buffer.concat([head, endings[i]!]));
      const linked = (await client.request(`/v2/${name}/blobs/${digest}`, { method: 'HEAD' })).status;
      t.is(linked, answer.status === 201 ? 200 : 404, `round ${round}: the ${answer.status} answer's blob`);
    }
  }
  t.is(bothLinked, 0, 'rounds in which one session became two blobs');
});
