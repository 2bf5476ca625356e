// Projects, quota holds, keys and signatures at their store interface, on a real PostgreSQL server: a database
// of its own for this file, dropped at the end (failing under SIGNET_TEST_REQUIRE_ALL=1 without one).
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import pg from 'pg';
import { digestOf } from '../../storage/digest.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { createPostgresProjectStore } from '../../storage/project-store.js';
import { createQuotaStore } from '../../storage/quota-store.js';
import { trustStoresConformance } from '../conformance/trust-stores.js';
import { testWithCommands } from '../helpers/env.js';
import { createMigratedTestDb } from '../helpers/migrated-db.js';
import { sleep } from '../helpers/wait.js';

const test = testWithCommands('project, key and signature stores on PostgreSQL', [], { postgres: true });

trustStoresConformance(test, async () => {
  const { db, close } = await createMigratedTestDb();
  return { db, cleanup: close };
});

// On a server, where another replica's check may hold the project's row lock meanwhile.

/** Another replica's check in progress: project `name`'s row locked from a connection of its own until `release`. */
async function lockProject(t: ExecutionContext, url: string, name: string): Promise<{ release: () => Promise<void> }> {
  const locker = new pg.Client({ connectionString: url });
  await locker.connect();
  t.teardown(() => locker.end());
  await locker.query('BEGIN');
  await locker.query('SELECT 1 FROM projects WHERE name = $1 FOR NO KEY UPDATE', [name]);
  return { release: async () => void (await locker.query('COMMIT')) };
}

/** `p`'s value, or 'still waiting' after `ms`. */
const answered = <T>(p: Promise<T>, ms: number) => Promise.race([p, sleep(ms).then(() => 'still waiting' as const)]);

test('quota holds: content the project holds is free at once, new content waits for the project lock', async (t) => {
  const { db, url, close } = await createMigratedTestDb();
  t.teardown(close);
  const projects = createPostgresProjectStore(db);
  await projects.create('q', { public: false });
  await projects.update('q', { quotaBytes: 1000 });
  const held = digestOf('sha256', randomBytes(32));
  await createPostgresMetadataStore(db).blobs.save('q/app', held, 10);
  const store = createQuotaStore(db, 'replica-a');
  const lock = await lockProject(t, url, 'q');
  t.deepEqual(await answered(store.hold('q', { repository: 'q/other', digest: held, size: 10, kind: 'blob' }), 5000), {
    outcome: 'free',
  });
  const fresh = store.hold('q', { repository: 'q/app', digest: digestOf('sha256', randomBytes(32)), size: 10, kind: 'blob' });
  t.is(await answered(fresh, 300), 'still waiting');
  await lock.release();
  t.is((await fresh).outcome, 'held');
});

test("quota holds: checks waiting for one project's lock leave the pool's connections to other projects", async (t) => {
  const { db, url, close } = await createMigratedTestDb();
  t.teardown(close);
  const projects = createPostgresProjectStore(db);
  for (const name of ['q', 'p']) {
    await projects.create(name, { public: false });
    await projects.update(name, { quotaBytes: 1_000_000 });
  }
  const store = createQuotaStore(db, 'replica-a');
  const lock = await lockProject(t, url, 'q');
  // Forty mounts of new content into q at once (a hostile member's flood), more than the pool has
  // connections (10): they wait for q's lock one at a time, not each on a connection of its own.
  const flood = Array.from({ length: 40 }, () =>
    store.hold('q', { repository: 'q/app', digest: digestOf('sha256', randomBytes(32)), size: 10, kind: 'blob' }),
  );
  await sleep(200);
  const other = store.hold('p', { repository: 'p/app', digest: digestOf('sha256', randomBytes(32)), size: 10, kind: 'blob' });
  t.like(await answered(other, 5000), { outcome: 'held' }, "another project's check is answered while q is locked");
  await lock.release();
  t.deepEqual(new Set((await Promise.all(flood)).map((a) => a.outcome)), new Set(['held']));
});
