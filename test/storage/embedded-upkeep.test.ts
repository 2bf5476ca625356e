// The embedded database's vacuum and analysis (storage/embedded-upkeep.ts): PGlite runs no
// autovacuum, so without it every push's upload row stayed behind as a dead row for good.
import { randomUUID } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { createPgliteDb, type Db } from '../../storage/db.js';
import { startEmbeddedUpkeep } from '../../storage/embedded-upkeep.js';
import type { MetadataStore } from '../../storage/metadata-store.js';
import { migrate } from '../../storage/migrate.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { testWithCommands } from '../helpers/env.js';
import { startTestRegistry } from '../helpers/registry.js';
import { sleep, until } from '../helpers/wait.js';

interface TableStats {
  n_dead_tup: number;
  vacuum_count: number;
  analyze_count: number;
}

async function statsOf(db: Db, table: string): Promise<TableStats> {
  // Counters reach the statistics once a second at most; this sends them now.
  await db.query('SELECT pg_stat_force_next_flush()');
  await db.query('SELECT 1');
  const [row] = await db.query<TableStats>('SELECT n_dead_tup, vacuum_count, analyze_count FROM pg_stat_user_tables WHERE relname = $1', [
    table,
  ]);
  if (!row) throw new Error(`no statistics for ${table}`);
  return { n_dead_tup: Number(row.n_dead_tup), vacuum_count: Number(row.vacuum_count), analyze_count: Number(row.analyze_count) };
}

/** `count` upload sessions begun and ended, as blob pushes leave them: as many dead rows. */
async function deadUploads(store: MetadataStore, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const id = randomUUID();
    await store.uploads.create(id, 'upkeep/repo');
    await store.uploads.remove(id);
  }
}

async function openDb(t: { teardown(fn: () => Promise<void>): void }): Promise<Db> {
  const db = await createPgliteDb(undefined);
  t.teardown(() => db.close());
  await migrate(db);
  return db;
}

test('a table past autovacuum thresholds is vacuumed and analysed; one below them is left alone', async (t) => {
  const db = await openDb(t);
  const store = createPostgresMetadataStore(db);
  const upkeep = startEmbeddedUpkeep(db, { intervalMs: 3_600_000 });
  t.teardown(() => upkeep.stop());
  await upkeep.pass(); // what migrating left due

  // 200 pushes' worth of upload sessions, begun and ended: 200 dead rows, no live one.
  await deadUploads(store, 200);
  // 30 new rows of another table: below the threshold of 50.
  await db.query(`INSERT INTO repositories (name) SELECT 'upkeep/few-' || i FROM generate_series(1, 30) i`);
  const before = await statsOf(db, 'uploads');
  t.true(before.n_dead_tup >= 200, `dead rows before: ${before.n_dead_tup}`);

  const done = await upkeep.pass();
  t.true(done.includes('uploads'), `vacuumed: ${done.join(', ')}`);
  t.false(done.includes('repositories'), 'a table with few changes is left alone');
  t.false(done.includes('robots'), 'an untouched table is left alone');
  const after = await statsOf(db, 'uploads');
  t.is(after.n_dead_tup, 0);
  t.is(after.vacuum_count, before.vacuum_count + 1);
  t.is(after.analyze_count, before.analyze_count + 1);
  t.deepEqual(await upkeep.pass(), [], 'nothing is due right after');
});

test('passes run on their interval until stopped, and stop waits for the one under way', async (t) => {
  const db = await openDb(t);
  const store = createPostgresMetadataStore(db);
  // The dead rows are all there before the first pass: one that came while they were being made
  // vacuumed the first ones, and the upkeep stopped before a pass took the rest (CI: 64 left).
  await deadUploads(store, 100);
  await db.query('SELECT pg_stat_force_next_flush()');
  const passes: string[][] = [];
  const upkeep = startEmbeddedUpkeep(db, { intervalMs: 50, onPass: ({ tables }) => passes.push(tables) });
  t.true(await until(() => passes.some((tables) => tables.includes('uploads')), 10_000), 'a pass vacuumed the uploads');
  await upkeep.stop();
  const count = passes.length;
  await sleep(200);
  t.is(passes.length, count, 'no pass after stop');
  t.is((await statsOf(db, 'uploads')).n_dead_tup, 0);
});

const postgresTest = testWithCommands('registry upkeep on PostgreSQL', [], { postgres: true });

/** 80 blob pushes begun and cancelled over HTTP (80 dead upload rows); the uploads table's vacuums then. */
async function churnUploads(t: ExecutionContext, database: 'pglite' | 'postgres'): Promise<() => Promise<number>> {
  const server = await startTestRegistry({ database, registryOptions: { upkeepIntervalMs: 100 } });
  t.teardown(() => server.close());
  for (let i = 0; i < 80; i++) {
    const started = await fetch(`${server.url}/v2/upkeep/repo/blobs/uploads/`, { method: 'POST' });
    t.is(started.status, 202);
    const cancelled = await fetch(new URL(started.headers.get('location')!, server.url), { method: 'DELETE' });
    t.is(cancelled.status, 204);
  }
  return async () => (await statsOf(server.registry.db, 'uploads')).vacuum_count;
}

test('a registry on the embedded database runs the upkeep', async (t) => {
  const vacuums = await churnUploads(t, 'pglite');
  t.true(await until(async () => (await vacuums()) > 0, 10_000), 'the uploads table was vacuumed');
});

postgresTest('a registry on PostgreSQL leaves vacuuming to autovacuum', async (t) => {
  const vacuums = await churnUploads(t, 'postgres');
  await sleep(1_000);
  t.is(await vacuums(), 0, 'no VACUUM from the registry');
});
