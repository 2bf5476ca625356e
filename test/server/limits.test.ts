// Limits on what one client can hold: upload requests streaming at once per caller
// (REGISTRY_UPLOADS_MAXCONCURRENT → 429 TOOMANYREQUESTS), blob downloads being sent at once per
// caller (REGISTRY_DOWNLOADS_MAXCONCURRENT → 429), and a body that stalls
// (REGISTRY_HTTP_IDLETIMEOUT → the connection is dropped, the partial chunk discarded).
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { blobOf } from '../helpers/oci-layout.js';
import { openRaw, requestHead } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { until } from '../helpers/wait.js';

async function gauge(registry: TestRegistry, name = 'signet_uploads_in_progress'): Promise<number> {
  const text = await registry.registry.deps.metrics.register.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

async function filesUnder(dir: string): Promise<string[]> {
  return readdir(dir, { recursive: true }).catch(() => []);
}

test('uploads streaming at once are bounded per caller: 429 TOOMANYREQUESTS past the bound', async (t) => {
  const registry = await startTestRegistry({ env: { REGISTRY_UPLOADS_MAXCONCURRENT: '1' } });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const port = Number(new URL(registry.url).port);
  const a = (await client.request('/v2/lim/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
  const b = (await client.request('/v2/lim/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;

  // A slow PATCH holds the one slot.
  const slow = await openRaw(port);
  slow.socket.write(requestHead('PATCH', a, { Host: 'x', 'Content-Length': '20', Connection: 'close' }));
  slow.socket.write('12345');
  t.true(await until(async () => (await gauge(registry)) === 1, 5000));

  const refused = await client.request(b, { method: 'PATCH', body: 'abcdefghij' });
  t.is(refused.status, 429);
  t.is(((await refused.json()) as OciErrorBody).errors[0]?.code, 'TOOMANYREQUESTS');
  // A closing PUT with a body is refused the same way, and its session stays for a retry.
  const closing = await client.request(`${b}?digest=sha256:${'0'.repeat(64)}`, { method: 'PUT', body: 'abcdefghij' });
  t.is(closing.status, 429);
  t.is((await client.request(b)).status, 204, 'the refused PUT left the session as it was');
  // Reads and session starts are not limited.
  t.is((await client.request('/v2/lim/app/blobs/uploads/', { method: 'POST' })).status, 202);

  slow.socket.write('678901234567890');
  const done = await slow.exchange;
  t.is(done.responses[0]?.status, 202);
  t.is(done.responses[0]?.headers.range, '0-19');
  t.is(await gauge(registry), 0);
  // The slot is free again.
  const accepted = await client.request(b, { method: 'PATCH', body: 'abcdefghij' });
  t.is(accepted.status, 202);
  t.is(accepted.headers.get('range'), '0-9');
});

test('a body that stalls past the idle timeout is dropped and its partial chunk discarded', async (t) => {
  const registry = await startTestRegistry({ env: { REGISTRY_HTTP_IDLETIMEOUT: '1' } });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const port = Number(new URL(registry.url).port);
  const location = (await client.request('/v2/idle/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
  t.is((await client.request(location, { method: 'PATCH', body: 'first-chunk' })).status, 202);

  const started = Date.now();
  const stalled = await openRaw(port, { timeoutMs: 10_000 });
  stalled.socket.write(requestHead('PATCH', location, { Host: 'x', 'Content-Length': '1000' }));
  stalled.socket.write('only-the-start');
  const result = await stalled.exchange;
  t.true(result.closed, 'the server closed the connection');
  t.true(Date.now() - started < 8000);

  // Nothing of the stalled chunk was kept: the upload is where it was, no chunk file is left.
  const id = location.split('/').pop()!;
  const storage = path.join(registry.dataDir, 'storage');
  const chunksOfUpload = async (): Promise<string[]> => (await filesUnder(path.join(storage, 'uploads'))).filter((name) => name.startsWith(`${id}.`));
  t.true(await until(async () => (await chunksOfUpload()).length === 1, 5000));
  t.true(await until(async () => (await filesUnder(path.join(storage, '_tmp'))).length === 0, 5000));
  t.true(await until(async () => (await gauge(registry)) === 0, 5000));
  const status = await client.request(location);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), '0-10');
  // The upload goes on from there.
  const next = await client.request(location, { method: 'PATCH', body: '-second', headers: { 'Content-Range': '11-17' } });
  t.is(next.status, 202);
  t.is(next.headers.get('range'), '0-17');
});

test('blob downloads being sent at once are bounded per caller: 429 TOOMANYREQUESTS past the bound', async (t) => {
  const registry = await startTestRegistry({ env: { REGISTRY_DOWNLOADS_MAXCONCURRENT: '2' } });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const port = Number(new URL(registry.url).port);
  // Larger than what the kernel takes for a client that does not read, so those GETs stay open.
  const blob = blobOf(randomBytes(16 * 1024 * 1024), 'application/octet-stream');
  t.is((await client.pushBlob('lim/pull', blob)).status, 201);
  const path = `/v2/lim/pull/blobs/${blob.digest}`;

  // Two clients that request the blob and never read.
  const stalled = await Promise.all([0, 1].map(() => openRaw(port, { timeoutMs: 60_000 })));
  for (const { socket } of stalled) {
    socket.pause();
    socket.write(requestHead('GET', path, { Host: 'x' }));
  }
  const downloads = (): Promise<number> => gauge(registry, 'signet_downloads_in_progress');
  t.true(await until(async () => (await downloads()) === 2, 10_000));

  const refused = await client.request(path);
  t.is(refused.status, 429);
  t.is(refused.headers.get('cache-control'), null, 'a refusal is not cached as the blob');
  t.is(refused.headers.get('etag'), null);
  t.is(((await refused.json()) as OciErrorBody).errors[0]?.code, 'TOOMANYREQUESTS');
  // HEAD sends nothing and is not counted.
  t.is((await client.request(path, { method: 'HEAD' })).status, 200);

  // A stalled client that goes frees its slot.
  stalled[0]!.socket.destroy();
  t.true(await until(async () => (await downloads()) === 1, 10_000));
  const got = await client.request(path);
  t.is(got.status, 200);
  t.true(Buffer.from(await got.arrayBuffer()).equals(blob.data));
  stalled[1]!.socket.destroy();
  t.true(await until(async () => (await downloads()) === 0, 10_000));
});
