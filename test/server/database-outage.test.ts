// PostgreSQL stopped and started again under two replicas that are being pushed to and pulled
// from: a PostgreSQL server of the test's own (initdb and pg_ctl in a temporary folder). Meanwhile
// what needs the database answers 503 UNAVAILABLE with Retry-After, naming the database, never
// 500, plain text or a reset; what was pulled lately is still served from the caches; /readyz
// says what is missing; each replica logs the outage once when it starts and once when it ends.
// Afterwards nothing acknowledged is lost, and each replica hears the other's changes again.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { testWithCommands } from '../helpers/env.js';
import { startFaultLoad, type FaultLoad } from '../helpers/fault-load.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage, type Image } from '../helpers/oci-layout.js';
import { ownPostgresMissing, startOwnPostgres, type OwnPostgres } from '../helpers/own-postgres.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { sleep, until } from '../helpers/wait.js';

const test = testWithCommands('database outage (own PostgreSQL)', [], { check: ownPostgresMissing });

/** Short, so that the outage outlasts it and cached entries are served past their TTL. */
const CACHE_TTL_S = 2;
let postgres: OwnPostgres;
let dir: string;
const replicas: TestRegistry[] = [];
const logs: CapturedLog[] = [];
let image: Image;

test.before(async () => {
  postgres = await startOwnPostgres();
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-db-outage-'));
  for (let i = 0; i < 2; i++) {
    logs.push(captureLog());
    replicas.push(
      await startTestRegistry({
        databaseUrl: postgres.url,
        log: logs[i]!.log,
        env: {
          // Both replicas share one storage root, as they would share a bucket.
          REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
          REGISTRY_CACHE_TTL: String(CACHE_TTL_S),
          // Past what a connection to the restarted server takes while the whole suite runs on two
          // cores: a connection made after the recovery that timed out would rightly be logged as
          // a second outage, which the last test counts.
          REGISTRY_DATABASE_CONNECTTIMEOUT: '5s',
          REGISTRY_DATABASE_QUERYTIMEOUT: '5s',
          REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
        },
      }),
    );
  }
  image = makeImage({ layers: 1 });
  const pushed = await createClient(replicas[0]!.url).pushImage('db/app', image, 'v1');
  if (pushed.status !== 201) throw new Error(`push failed: ${pushed.status}`);
});

test.after.always(async () => {
  for (const replica of replicas) await replica.close().catch(() => undefined);
  await postgres?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const on = (i: number) => createClient(replicas[i]!.url);

async function readiness(i: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await on(i).request('/readyz');
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** What a pull of `db/app` reads: fills each replica's caches. */
async function pullEverything(i: number): Promise<number[]> {
  const client = on(i);
  const layer = image.layers[0]!.digest;
  const answers = await Promise.all([
    client.getManifest('db/app', 'v1'),
    client.request('/v2/db/app/tags/list'),
    client.request(`/v2/db/app/blobs/${layer}`, { method: 'HEAD' }),
    client.request(`/v2/db/app/blobs/${layer}`),
  ]);
  await Promise.all(answers.map((res) => res.arrayBuffer()));
  return answers.map((res) => res.status);
}

/** Reads a tag on replica `i` until it names `digest`, for at most `ms`. */
async function sees(i: number, tag: string, digest: string, ms: number): Promise<boolean> {
  return until(async () => (await on(i).getManifest('db/app', tag)).headers.get('docker-content-digest') === digest, ms);
}

test.serial('PostgreSQL stopped and started under load: 503 with Retry-After meanwhile, cached pulls go on, nothing lost', async (t) => {
  t.timeout(120_000);
  for (const i of [0, 1]) t.deepEqual(await pullEverything(i), [200, 200, 200, 200]);
  const load: FaultLoad = startFaultLoad(
    replicas.map((r) => r.url),
    { repository: 'db/app', reference: 'v1', blob: image.layers[0]!.digest },
    { catalog: true },
  );
  // A failed assertion below must not leave the load running: the test process would not exit.
  t.teardown(() => load.stop());
  await sleep(500);
  await pullEverything(0);
  await pullEverything(1);
  const stoppedAt = Date.now();
  await postgres.stop('fast');

  // Readiness says which dependency is missing, and why, on both replicas.
  t.true(await until(async () => (await readiness(0)).status === 503 && (await readiness(1)).status === 503, 10_000));
  const ready = await readiness(1);
  const readyError = (ready.body as unknown as OciErrorBody).errors[0]!;
  t.is(readyError.code, 'UNAVAILABLE');
  t.regex(readyError.message, /^not ready: database (connection refused|not accepting connections yet|shutting down)$/);
  t.like(readyError.detail, { storage: 'ok' });
  t.true(
    await until(
      async () =>
        ((await readiness(1)).body as { errors: [{ detail: { notifications?: string } }] }).errors[0].detail.notifications ===
        'reconnecting',
      5000,
    ),
  );

  // Past the cache TTL: what was pulled is still served; what needs the database is a 503.
  await sleep(Math.max(0, stoppedAt + CACHE_TTL_S * 1000 + 500 - Date.now()));
  for (const i of [0, 1]) t.deepEqual(await pullEverything(i), [200, 200, 200, 200], `replica ${i} serves what it had cached`);
  // A catalog page read before the outage may still be served from the cache, as pulls are; one
  // never read needs the database.
  const catalog = await on(0).request('/v2/_catalog?n=3');
  t.is(catalog.status, 503);
  t.is(catalog.headers.get('retry-after'), '5');
  const catalogError = ((await catalog.json()) as OciErrorBody).errors[0]!;
  t.is(catalogError.code, 'UNAVAILABLE');
  t.regex(catalogError.message, /the registry's database is unavailable \(.+\); try again later/);
  t.like(catalogError.detail, { dependency: 'database' });
  const upload = await on(1).request('/v2/db/app/blobs/uploads/', { method: 'POST' });
  t.is(upload.status, 503);
  t.is(((await upload.json()) as OciErrorBody).errors[0]!.code, 'UNAVAILABLE');

  await postgres.start();
  t.true(await until(async () => (await readiness(0)).status === 200 && (await readiness(1)).status === 200, 20_000));
  await sleep(500); // some load after the recovery too
  await load.stop();

  // Every answer was a success, or a 503 UNAVAILABLE with Retry-After: no 500, no plain text, no reset.
  const failures = load.answers.filter((a) => a.status >= 400 || a.status === 0);
  const unexpected = failures.filter((a) => a.status !== 503 || a.code !== 'UNAVAILABLE' || a.retryAfter !== '5');
  t.deepEqual(unexpected, [], 'only 503 UNAVAILABLE with Retry-After');
  t.true(failures.length > 0, 'the load met the outage');
  // Cached pulls never failed, outage or not.
  t.deepEqual(
    load.answers.filter(
      (a) => a.what !== 'manifest push' && a.what !== 'blob push' && a.what !== 'catalog' && (a.status >= 300 || a.status === 0),
    ),
    [],
  );
  // No acknowledged push is lost: both replicas serve every one.
  t.true(load.acknowledged.length > 0);
  for (const { repository, tag, digest } of load.acknowledged) {
    for (const i of [0, 1]) {
      const res = await on(i).getManifest(repository, tag);
      t.is(res.headers.get('docker-content-digest'), digest, `${repository}:${tag} on replica ${i}`);
    }
  }
});

test.serial('after the outage each replica hears the other again: a moved tag is seen before the cache expires', async (t) => {
  for (const [writer, reader] of [
    [0, 1],
    [1, 0],
  ] as const) {
    const before = makeImage({ layers: 1 });
    const after = makeImage({ layers: 1 });
    t.is((await on(writer).pushImage('db/app', before, 'moving')).status, 201);
    t.true(await sees(reader, 'moving', before.manifest.digest, 5000));
    // Cached on the reader now, for CACHE_TTL_S: only a notification can show the move sooner.
    const movedAt = Date.now();
    t.is((await on(writer).pushImage('db/app', after, 'moving')).status, 201);
    t.true(await sees(reader, 'moving', after.manifest.digest, (CACHE_TTL_S * 1000) / 2));
    t.true(Date.now() - movedAt < CACHE_TTL_S * 1000, 'seen through the notification, not the cache expiring');
  }
});

test.serial('each replica logged the outage twice: when it started and when it ended, with no stack traces', async (t) => {
  for (const [i, log] of logs.entries()) {
    // The end is logged once the database has answered for a second (server/availability.ts).
    await until(
      async () =>
        log.withMessage('database available again').length > 0 && log.withMessage('change notifications available again').length > 0,
      5000,
    );
    const down = log.withMessage('database unavailable: requests that need it answer 503 until it is back');
    // The lines themselves in the message: a second outage says why it was one.
    t.is(down.length, 1, `replica ${i}: one line when the outage started: ${JSON.stringify(down)}`);
    t.is(typeof down[0]?.reason, 'string');
    t.is(down[0]?.err, undefined, 'no stack trace');
    t.is(log.withMessage('database available again').length, 1, `replica ${i}: one line when it ended`);
    t.is(log.withMessage('change notifications from other replicas interrupted; caches are flushed on reconnect').length, 1);
    t.is(log.withMessage('change notifications available again').length, 1);
    t.deepEqual(log.withMessage('request failed'), [], `replica ${i}: no request failed with a stack trace`);
  }
});
