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
import { openRaw, rawRequest, requestHead } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { sleep, until } from '../helpers/wait.js';

async function gauge(registry: TestRegistry, name = 'signet_uploads_in_progress'): Promise<number> {
  const text = await registry.registry.deps.metrics.register.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? NaN);
}

async function filesUnder(dir: string): Promise<string[]> {
  return readdir(dir, { recursive: true }).catch(() => []);
}

test('uploads streaming at once are bounded per caller: 429 TOOMANYREQUESTS past the bound', async (t) => {
  // No stall timeout: the slow PATCH below holds its slot however slow the machine is.
  const registry = await startTestRegistry({ env: { REGISTRY_UPLOADS_MAXCONCURRENT: '1', REGISTRY_HTTP_STALLTIMEOUT: '0' } });
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
  // Short for the test, long enough for a busy machine to answer each request within it (the
  // timeout also ends a request while the server works on it without a byte moving: an fsync).
  const registry = await startTestRegistry({ env: { REGISTRY_HTTP_IDLETIMEOUT: '4' } });
  t.teardown(() => registry.close());
  const port = Number(new URL(registry.url).port);
  // A connection of its own for each request: with so short an idle timeout, a kept-alive one may
  // be closed by the server just as fetch reuses it, on a busy machine.
  const once = async (method: string, target: string, body = '', headers: Record<string, string> = {}) => {
    const head = requestHead(method, target, { Host: 'x', 'Content-Length': String(body.length), Connection: 'close', ...headers });
    const exchange = await rawRequest(port, head + body, { timeoutMs: 20_000 });
    return exchange.responses[0]!;
  };
  const location = (await once('POST', '/v2/idle/app/blobs/uploads/')).headers.location!;
  t.is((await once('PATCH', location, 'first-chunk')).status, 202);

  const started = Date.now();
  const stalled = await openRaw(port, { timeoutMs: 30_000 });
  stalled.socket.write(requestHead('PATCH', location, { Host: 'x', 'Content-Length': '1000' }));
  stalled.socket.write('only-the-start');
  const result = await stalled.exchange;
  t.true(result.closed, 'the server closed the connection');
  t.true(Date.now() - started < 20_000, 'well before the 60 s default');

  // Nothing of the stalled chunk was kept: the upload is where it was, no chunk file is left.
  const id = location.split('/').pop()!;
  const storage = path.join(registry.dataDir, 'storage');
  const chunksOfUpload = async (): Promise<string[]> =>
    (await filesUnder(path.join(storage, 'uploads'))).filter((name) => name.startsWith(`${id}.`));
  t.true(await until(async () => (await chunksOfUpload()).length === 1, 5000));
  t.true(await until(async () => (await filesUnder(path.join(storage, '_tmp'))).length === 0, 5000));
  t.true(await until(async () => (await gauge(registry)) === 0, 5000));
  const status = await once('GET', location);
  t.is(status.status, 204);
  t.is(status.headers.range, '0-10');
  // The upload goes on from there.
  const next = await once('PATCH', location, '-second', { 'Content-Range': '11-17' });
  t.is(next.status, 202);
  t.is(next.headers.range, '0-17');
});

test('blob downloads being sent at once are bounded per caller: 429 TOOMANYREQUESTS past the bound', async (t) => {
  const registry = await startTestRegistry({ env: { REGISTRY_DOWNLOADS_MAXCONCURRENT: '2', REGISTRY_HTTP_STALLTIMEOUT: '0' } });
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

/** Starts a PATCH that sends `first` of its `total` bytes and then nothing more; resolves once the server holds its slot. */
async function stalledPatch(registry: TestRegistry, location: string, headers: Record<string, string> = {}) {
  const port = Number(new URL(registry.url).port);
  const before = await gauge(registry);
  const raw = await openRaw(port, { timeoutMs: 60_000 });
  raw.socket.write(requestHead('PATCH', location, { Host: 'x', 'Content-Length': '1000', Connection: 'close', ...headers }));
  raw.socket.write('x'.repeat(100));
  if (!(await until(async () => (await gauge(registry)) === before + 1, 10_000))) throw new Error('the stalled PATCH got no slot');
  return raw;
}

test('behind a trusted proxy each forwarded client has its own upload slots; an untrusted peer cannot pick one', async (t) => {
  const registry = await startTestRegistry({
    env: { REGISTRY_UPLOADS_MAXCONCURRENT: '1', REGISTRY_HTTP_TRUSTEDPROXIES: '127.0.0.1', REGISTRY_HTTP_STALLTIMEOUT: '0' },
  });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const session = async (): Promise<string> =>
    (await client.request('/v2/proxy/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
  // The proxy (this test, on 127.0.0.1) forwards client A's PATCH, which stalls and holds A's slot.
  const a = await stalledPatch(registry, await session(), { 'X-Forwarded-For': '203.0.113.1' });
  t.teardown(() => a.socket.destroy());
  const patch = async (forwardedFor: string): Promise<number> =>
    (await client.request(await session(), { method: 'PATCH', body: 'abc', headers: { 'X-Forwarded-For': forwardedFor } })).status;
  t.is(await patch('203.0.113.2'), 202, 'client B is not held back by client A');
  t.is(await patch('203.0.113.1'), 429, 'client A is at its bound');
  // A client cannot pose as another by sending its own X-Forwarded-For: the proxy appends the real one.
  t.is(await patch('203.0.113.2, 203.0.113.1'), 429);
});

test('X-Forwarded-For from a peer that is not a trusted proxy is ignored', async (t) => {
  const registry = await startTestRegistry({
    env: { REGISTRY_UPLOADS_MAXCONCURRENT: '1', REGISTRY_HTTP_TRUSTEDPROXIES: '10.0.0.0/8', REGISTRY_HTTP_STALLTIMEOUT: '0' },
  });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const session = async (): Promise<string> =>
    (await client.request('/v2/proxy/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
  const a = await stalledPatch(registry, await session(), { 'X-Forwarded-For': '203.0.113.1' });
  t.teardown(() => a.socket.destroy());
  const res = await client.request(await session(), { method: 'PATCH', body: 'abc', headers: { 'X-Forwarded-For': '203.0.113.2' } });
  t.is(res.status, 429, 'both are 127.0.0.1');
});

test('an upload that stopped moving gives its slot to its caller’s next upload, long before the idle timeout', async (t) => {
  const registry = await startTestRegistry({ env: { REGISTRY_UPLOADS_MAXCONCURRENT: '1', REGISTRY_HTTP_STALLTIMEOUT: '2' } });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const session = async (): Promise<string> =>
    (await client.request('/v2/stall/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;

  // A slow upload that keeps moving keeps its slot.
  const port = Number(new URL(registry.url).port);
  const trickling = await openRaw(port, { timeoutMs: 60_000 });
  const slow = await session();
  trickling.socket.write(requestHead('PATCH', slow, { Host: 'x', 'Content-Length': '60', Connection: 'close' }));
  let sent = 0;
  const trickle = setInterval(() => {
    if (sent < 60) trickling.socket.write('y');
    sent += 1;
  }, 100);
  t.teardown(() => clearInterval(trickle));
  t.true(await until(async () => (await gauge(registry)) === 1, 10_000));
  const started = Date.now();
  while (Date.now() - started < 4000) {
    t.is((await client.request(await session(), { method: 'PATCH', body: 'abc' })).status, 429, 'a moving upload keeps its slot');
    await sleep(500);
  }
  clearInterval(trickle);
  trickling.socket.write('y'.repeat(Math.max(0, 60 - sent)));
  t.is((await trickling.exchange).responses[0]?.status, 202);
  t.true(await until(async () => (await gauge(registry)) === 0, 10_000));

  // A stalled one gives it up once it moved nothing for REGISTRY_HTTP_STALLTIMEOUT.
  const stalledLocation = await session();
  t.is((await client.request(stalledLocation, { method: 'PATCH', body: 'first' })).status, 202);
  const stalled = await stalledPatch(registry, stalledLocation);
  const next = await session();
  t.true(
    await until(async () => (await client.request(next, { method: 'PATCH', body: 'abc' })).status === 202, 20_000),
    'the next upload got the stalled one’s slot',
  );
  const closed = await stalled.exchange;
  t.true(closed.closed, 'the stalled request was closed');
  // The stalled upload is where its last complete chunk left it, and goes on from there.
  const status = await client.request(stalledLocation);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), '0-4');
});

test('a download whose client stopped reading gives its slot to its caller’s next download', async (t) => {
  const registry = await startTestRegistry({ env: { REGISTRY_DOWNLOADS_MAXCONCURRENT: '1', REGISTRY_HTTP_STALLTIMEOUT: '2' } });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const blob = blobOf(randomBytes(16 * 1024 * 1024), 'application/octet-stream');
  t.is((await client.pushBlob('stall/pull', blob)).status, 201);
  const path = `/v2/stall/pull/blobs/${blob.digest}`;
  const stalled = await openRaw(Number(new URL(registry.url).port), { timeoutMs: 60_000 });
  stalled.socket.pause();
  stalled.socket.write(requestHead('GET', path, { Host: 'x' }));
  t.true(await until(async () => (await gauge(registry, 'signet_downloads_in_progress')) === 1, 10_000));
  let got: Buffer | undefined;
  t.true(
    await until(async () => {
      const res = await client.request(path);
      if (res.status === 200) got = Buffer.from(await res.arrayBuffer());
      else await res.arrayBuffer();
      return res.status === 200;
    }, 20_000),
    'the next download got the stalled one’s slot',
  );
  t.true(got?.equals(blob.data));
  // Reading now, the stalled client finds its connection closed before the whole blob came.
  stalled.socket.resume();
  const exchange = await stalled.exchange;
  t.true(exchange.closed, 'the stalled download was closed');
  t.true((exchange.responses[0]?.body.length ?? 0) < blob.size, 'and cut short');
});
