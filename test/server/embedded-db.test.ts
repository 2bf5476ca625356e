// The embedded PostgreSQL runs in a child process of `signet serve` (storage/pglite-process.ts).
// It must never outlive the registry, never be opened twice on one data directory, and its loss
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
import { sleep, until } from '../helpers/wait.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

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

/** The pid of the database process, from the data directory's lock file. */
function databasePid(database: string): number {
  return Number.parseInt(readFileSync(path.join(database, LOCK_FILE), 'utf8'), 10);
}

test('the database process goes when the registry is killed, and a restart serves what was pushed', async (t) => {
  const { env, database } = await dataDir(t);
  const first = await startServerProcess(env);
  t.teardown(() => first.kill());
  const image = makeImage({ layers: 1 });
  t.is((await createClient(first.url).pushImage('embedded/app', image, 'v1')).status, 201);
  const dbPid = databasePid(database);
  t.true(alive(dbPid));
  t.not(dbPid, first.child.pid);

  await first.kill('SIGKILL');
  t.true(await until(() => !alive(dbPid), 15_000), 'the database process left with its parent');

  const second = await startServerProcess(env);
  t.teardown(() => second.kill());
  const res = await createClient(second.url).getManifest('embedded/app', 'v1');
  t.is(res.status, 200);
  t.deepEqual(Buffer.from(await res.arrayBuffer()), image.manifest.data);
});

test('Ctrl-C reaches the database process too, yet the registry drains and exits 0', async (t) => {
  const { env, database } = await dataDir(t);
  const server = await startServerProcess(env);
  t.teardown(() => server.kill());
  const dbPid = databasePid(database);
  // What a terminal does: SIGINT to every process of the group.
  process.kill(dbPid, 'SIGINT');
  await sleep(200);
  t.true(alive(dbPid), 'the database process waits for the registry to close it');
  t.is(await server.kill('SIGINT'), 0);
  t.true(await until(() => !alive(dbPid), 15_000));
});

test('if the database process dies, the registry stops with a failure instead of serving errors', async (t) => {
  const { env, database } = await dataDir(t);
  const server = await startServerProcess(env);
  t.teardown(() => server.kill());
  const exit = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
  process.kill(databasePid(database), 'SIGKILL');
  t.is(await exit, 1);
  t.true(server.logs.some((entry) => entry.level === 60 && String(entry.msg).includes('embedded database')));
});

test('one data directory is never opened by two database processes', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-embedded-lock-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const first = await createPgliteDb(dir);
  t.teardown(() => first.close());
  await first.query('CREATE TABLE kept (v int)');
  await first.query('INSERT INTO kept VALUES (1)');
  const error = await t.throwsAsync(createPgliteDb(dir));
  t.regex(error.message, /in use by another signet process/);
  t.deepEqual(await first.query('SELECT v FROM kept'), [{ v: 1 }], 'the first keeps working');

  // Once the first has closed, the directory is free again.
  await first.close();
  const reopened = await createPgliteDb(dir);
  t.teardown(() => reopened.close());
  t.deepEqual(await reopened.query('SELECT v FROM kept'), [{ v: 1 }]);
});
