// A database and an object store that accept connections and never answer (a hung host, a broken
// middlebox): a TCP proxy in front of the real PostgreSQL and s3rver that stalls. A request that
// needs the stalled dependency answers 503 UNAVAILABLE ("timed out") after the configured timeout
// instead of being held open, and everything works again once the dependency answers.
import { randomBytes } from 'node:crypto';
import { testWithCommands } from '../helpers/env.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage, type Image } from '../helpers/oci-layout.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3rver, type TestS3 } from '../helpers/s3rver.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { until } from '../helpers/wait.js';

const test = testWithCommands('stalled dependencies', [], { postgres: true });

let database: TestDatabase;
let s3: TestS3;
let dbProxy: TcpProxy;
let s3Proxy: TcpProxy;
let registry: TestRegistry;
let client: ReturnType<typeof createClient>;
let image: Image;
/** The timeouts set below are 1 s; anything held much longer than that was not bounded. */
const BOUND_MS = 10_000;

test.before(async () => {
  database = await createTestDatabase();
  s3 = await startS3rver();
  const dbUrl = new URL(database.url);
  dbProxy = await startTcpProxy(Number(dbUrl.port || 5432), dbUrl.hostname);
  dbUrl.port = String(dbProxy.port);
  s3Proxy = await startTcpProxy(Number(new URL(s3.endpoint).port));
  registry = await startTestRegistry({
    databaseUrl: dbUrl.toString(),
    env: s3.registryEnv({
      REGISTRY_STORAGE_S3_REGIONENDPOINT: `http://127.0.0.1:${s3Proxy.port}`,
      REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
      REGISTRY_STORAGE_S3_IDLETIMEOUT: '1s',
      REGISTRY_DATABASE_CONNECTTIMEOUT: '1s',
      REGISTRY_DATABASE_QUERYTIMEOUT: '1s',
      REGISTRY_CACHE_TTL: '0',
    }),
  });
  client = createClient(registry.url);
  image = makeImage({ layers: 1 });
  const pushed = await client.pushImage('stall/app', image, 'v1');
  if (pushed.status !== 201) throw new Error(`push failed: ${pushed.status}`);
});

test.after.always(async () => {
  await registry?.close();
  await dbProxy?.close();
  await s3Proxy?.close();
  await database?.drop();
  await s3?.close();
});

/** Sends a request with a deadline far past the timeouts: a hang fails the test instead of holding it. */
async function timed(path: string, init: RequestInit = {}): Promise<{ res: Response; ms: number }> {
  const started = Date.now();
  const res = await client.request(path, { ...init, signal: AbortSignal.timeout(BOUND_MS * 2) });
  return { res, ms: Date.now() - started };
}

async function unavailable(
  t: { is: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void },
  path: string,
  dependency: string,
  init: RequestInit = {},
): Promise<void> {
  const { res, ms } = await timed(path, init);
  t.is(res.status, 503, `${init.method ?? 'GET'} ${path}`);
  t.true(ms < BOUND_MS, `answered after ${ms} ms`);
  const error = ((await res.json()) as OciErrorBody).errors[0]!;
  t.is(error.code, 'UNAVAILABLE');
  t.is(JSON.stringify(error.detail), JSON.stringify({ dependency, reason: 'timed out' }));
}

test.serial('a stalled database: 503 "timed out" within the timeout, then back to normal', async (t) => {
  t.timeout(90_000);
  dbProxy.stall();
  await unavailable(t, '/v2/_catalog', 'database');
  await unavailable(t, '/v2/stall/app/manifests/v1', 'database');
  await unavailable(t, '/v2/stall/app/blobs/uploads/', 'database', { method: 'POST' });
  const { res, ms } = await timed('/readyz');
  t.is(res.status, 503);
  t.true(ms < BOUND_MS);
  t.like(((await res.json()) as OciErrorBody).errors[0]!.detail, { database: 'timed out', storage: 'ok' });

  dbProxy.resume();
  t.true(await until(async () => (await timed('/readyz')).res.status === 200, BOUND_MS));
  t.is((await client.getManifest('stall/app', 'v1')).status, 200);
});

test.serial('a stalled object store: 503 "timed out" within the timeout, uploads included, then back to normal', async (t) => {
  t.timeout(90_000);
  const layer = image.layers[0]!;
  s3Proxy.stall();
  await unavailable(t, `/v2/stall/app/blobs/${layer.digest}`, 'storage');
  // An upload whose bytes S3 does not take: answered, not held, and the upload stays at 0.
  const started = await client.request('/v2/stall/app/blobs/uploads/', { method: 'POST' });
  const location = started.headers.get('location')!;
  await unavailable(t, location, 'storage', { method: 'PATCH', body: new Uint8Array(randomBytes(1024 * 1024)) });
  // The database alone still answers a blob HEAD.
  t.is((await timed(`/v2/stall/app/blobs/${layer.digest}`, { method: 'HEAD' })).res.status, 200);

  s3Proxy.resume();
  t.true(await until(async () => (await timed('/readyz')).res.status === 200, BOUND_MS));
  const got = await client.request(`/v2/stall/app/blobs/${layer.digest}`);
  t.true(Buffer.from(await got.arrayBuffer()).equals(layer.data));
  const data = randomBytes(100_000);
  t.is((await client.request(location, { method: 'PATCH', body: new Uint8Array(data) })).status, 202);
});
