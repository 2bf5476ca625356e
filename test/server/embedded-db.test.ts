// The embedded PostgreSQL runs in a worker thread of `signet serve` (storage/pglite-worker.ts).
// It must never be opened twice on one data directory, survive the registry's crash, and its loss
// must stop the registry instead of leaving it answering 500s.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createPgliteDb } from '../../storage/db.js';
import { LOCK_FILE } from '../../storage/pglite-protocol.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startServerProcess } from '../helpers/server-process.js';
import { until } from '../helpers/wait.js';

async function dataDir(t: { teardown: (fn: () => Promise<void>) => void }): Promise<{ env: Record<string, string>; database: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-embedded-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const database = path.join(dir, 'database');
  return {
    database,
    env: {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      REGISTRY_DATABASE_DATADIRECTORY: database,
      REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    },
  };
}

/** What the data directory's lock file says: the pid of the process holding it. */
function lockHolder(database: string): number | undefined {
  try {
    return Number.parseInt(readFileSync(path.join(database, LOCK_FILE), 'utf8'), 10);
  } catch {
    return undefined;
  }
}

test('a registry killed mid-flight leaves a stale lock that a restart takes over, serving what was pushed', async (t) => {
  const { env, database } = await dataDir(t);
  const first = await startServerProcess(env);
  t.teardown(() => first.kill());
  const image = makeImage({ layers: 1 });
  t.is((await createClient(first.url).pushImage('embedded/app', image, 'v1')).status, 201);
  // The database is a thread of the registry: the registry's own pid holds the directory.
  t.is(lockHolder(database), first.child.pid);

  await first.kill('SIGKILL');
  t.is(lockHolder(database), first.child.pid, 'a killed registry cannot remove its lock');

  const second = await startServerProcess(env);
  t.teardown(() => second.kill());
  t.is(lockHolder(database), second.child.pid);
  const res = await createClient(second.url).getManifest('embedded/app', 'v1');
  t.is(res.status, 200);
  t.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest.data);
});

test('Ctrl-C: the registry drains, closes the database cleanly (lock released) and exits 0', async (t) => {
  const { env, database } = await dataDir(t);
  const server = await startServerProcess(env);
  t.teardown(() => server.kill());
  t.is(lockHolder(database), server.child.pid);
  t.is(await server.kill('SIGINT'), 0);
  t.is(lockHolder(database), undefined);
});

test('if the database ends (here: a result past its heap bound), queries fail and the registry is told, instead of serving errors', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-embedded-end-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let told: Error | undefined;
  const db = await createPgliteDb(dir, { maxHeapMb: 48, onExit: (err) => (told = err) });
  t.teardown(() => db.close());
  t.deepEqual(await db.query('SELECT 1 AS one'), [{ one: 1 }]);
  // 128 rows of 1 MiB: the rows are built in the worker's heap before they cross.
  await t.throwsAsync(db.query(`SELECT repeat('x', 1048576) FROM generate_series(1, 128)`), { message: /embedded database/ });
  t.true(await until(() => told !== undefined, 5_000));
  t.regex(told!.message, /embedded database/);
  await t.throwsAsync(db.query('SELECT 1'), { message: /embedded database/ });
  // The directory is free again for a restart.
  const reopened = await createPgliteDb(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(await reopened.query('SELECT 1 AS one'), [{ one: 1 }]);
});

test('one data directory is never opened by two database processes', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-embedded-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = await createPgliteDb(dir);
  t.teardown(() => first.close());
  await first.query('CREATE TABLE kept (v int)');
  await first.query('INSERT INTO kept VALUES (1)');
  const error = await t.throwsAsync(createPgliteDb(dir));
  t.regex(error.message, /in use by this process already/);
  t.deepEqual(await first.query('SELECT v FROM kept'), [{ v: 1 }], 'the first keeps working');

  // Once the first has closed, the directory is free again.
  await first.close();
  const reopened = await createPgliteDb(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(await reopened.query('SELECT v FROM kept'), [{ v: 1 }]);
});
