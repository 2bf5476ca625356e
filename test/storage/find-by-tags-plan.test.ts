// Manifest lookups by tag, batched (storage/postgres-manifests.ts, FIND_BY_TAGS), on both
// databases: with one repository holding far more tags than the average, no pair may be found by
// reading that repository's tags and dropping the others.
// Written as a plain join, the planner (counting the average of tags per repository) filtered a
// repository's 50,000 tags by name for every lookup: 0.6 s for 32 lookups instead of 2 ms.
import type { ExecutionContext } from 'ava';
import { createPgliteDb, createPostgresDb, type Db } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { createPostgresManifests, FIND_BY_TAGS } from '../../storage/postgres-manifests.js';
import { testWithCommands } from '../helpers/env.js';
import { createTestDatabase } from '../helpers/postgres.js';

const test = testWithCommands('batched lookups by tag on PostgreSQL', [], { postgres: true });

/** One repository with `big` tags, `small` repositories with 10 each, as the scale bench has. */
async function populate(db: Db, big: number, small: number): Promise<void> {
  await db.query(`INSERT INTO repositories (name) VALUES ('skewed/big')`);
  await db.query(`INSERT INTO repositories (name) SELECT 'skewed/s' || i FROM generate_series(1, ${small}) i`);
  await db.query(`INSERT INTO manifests (repository_id, digest, media_type, content, size)
    SELECT r.id, 'sha256:' || md5(r.name || k) || md5(k::text), 'application/vnd.oci.image.manifest.v1+json', '\\x7b7d'::bytea, 2
    FROM repositories r, generate_series(1, ${big}) k WHERE r.name = 'skewed/big' OR k <= 10`);
  await db.query(
    `INSERT INTO tags (repository_id, name, manifest_digest) SELECT repository_id, 't' || substr(digest, 40, 10), digest FROM manifests`,
  );
  await db.query('ANALYZE');
}

async function assertIndexedLookups(t: ExecutionContext, db: Db): Promise<void> {
  await populate(db, 5_000, 500);
  const tags = await db.query<{ name: string }>(
    `SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = 'skewed/big' LIMIT 32`,
  );
  const statement = FIND_BY_TAGS.replace('$1::text[]', '$1').replace('$2::text[]', '$2');
  // Batches of a few pairs each, as a busy registry sends them: after PostgreSQL's five custom
  // plans, one generic plan serves them all (no planning per batch).
  for (let run = 0; run < 12; run++) {
    const pairs = tags.slice(run, run + 1 + (run % 3));
    const rows = await db.query(FIND_BY_TAGS, [pairs.map(() => 'skewed/big'), pairs.map((r) => r.name)]);
    t.is(rows.length, pairs.length);
  }
  const [plans] = await db.query<{ generic_plans: number; custom_plans: number }>(
    `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
    [FIND_BY_TAGS],
  );
  t.true(Number(plans?.generic_plans) >= 6 && Number(plans?.custom_plans) <= 6, `plans: ${JSON.stringify(plans)}`);
  await db.transaction(async (tx) => {
    await tx.query(`PREPARE lookups (text[], text[]) AS ${statement}`);
    for (const mode of ['force_generic_plan', 'force_custom_plan']) {
      await tx.query(`SET LOCAL plan_cache_mode = ${mode}`);
      const literal = (values: string[]) => `ARRAY[${values.map((v) => `'${v}'`).join(',')}]::text[]`;
      const plan = (
        await tx.query<{ 'QUERY PLAN': string }>(
          `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE lookups (${literal(tags.map(() => 'skewed/big'))}, ${literal(tags.map((r) => r.name))})`,
        )
      ).map((r) => r['QUERY PLAN']);
      const text = plan.join('\n');
      // Either through the index by repository and name, or (a small table) one hash of it; never
      // a repository's tags read and dropped one by one for each pair.
      t.notRegex(text, /Rows Removed by (Join )?Filter/, `${mode}: no tags read and dropped\n${text}`);
      t.regex(text, new RegExp(`rows=${tags.length}(\\.00)? loops=1\\)\\s*$`, 'm'), `${mode}: every pair found`);
    }
    await tx.query('DEALLOCATE lookups');
  });
}

test("PGlite: batched lookups by tag read no repository's tags whole and are planned once", async (t) => {
  const db = await createPgliteDb(undefined);
  t.teardown(() => db.close());
  await migrate(db);
  await assertIndexedLookups(t, db);
});

/** A migrated database of the test's own on the PostgreSQL server, with a pool of `max`. */
async function migratedPostgres(t: ExecutionContext, max: number): Promise<Db> {
  const database = await createTestDatabase();
  t.teardown(() => database.drop());
  const db = await createPostgresDb(database.url, { max });
  t.teardown(() => db.close());
  await migrate(db);
  return db;
}

test("PostgreSQL: batched lookups by tag read no repository's tags whole and are planned once", async (t) => {
  // One connection: pg_prepared_statements shows the session's own statements.
  await assertIndexedLookups(t, await migratedPostgres(t, 1));
});

test('PostgreSQL: a busy registry sends at most two batched lookups at once, each carrying the lookups that came meanwhile', async (t) => {
  const db = await migratedPostgres(t, 10);
  await populate(db, 200, 20);
  const tags = await db.query<{ repository: string; name: string; manifest_digest: string }>(
    `SELECT r.name AS repository, t.name, t.manifest_digest FROM tags t JOIN repositories r ON r.id = t.repository_id ORDER BY t.name LIMIT 200`,
  );
  let inFlight = 0;
  let most = 0;
  let statements = 0;
  const counted: Db = {
    ...db,
    connections: db.connections,
    async query<R extends object>(sql: string, params?: unknown[]): Promise<R[]> {
      if (sql !== FIND_BY_TAGS) return db.query<R>(sql, params);
      statements++;
      most = Math.max(most, ++inFlight);
      try {
        // A database that takes longer than a tick to answer, as a busy one does: without it, on a
        // fast machine every tick's five lookups could be answered before the next tick and the
        // count below would measure the machine's speed, not the batching (it once read 40 under
        // the full suite's load).
        await new Promise((resolve) => setTimeout(resolve, 3));
        return await db.query<R>(sql, params);
      } finally {
        inFlight--;
      }
    },
  };
  const manifests = createPostgresManifests(counted);
  // Five GETs a tick, as requests arrive at a busy server: more than the pool's ten connections
  // would take one statement each.
  const lookups: Promise<string | undefined>[] = [];
  for (let i = 0; i < tags.length; i += 5) {
    for (const { repository, name } of tags.slice(i, i + 5)) lookups.push(manifests.findByTag(repository, name).then((m) => m?.digest));
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.deepEqual(
    await Promise.all(lookups),
    tags.map((r) => r.manifest_digest),
    'each lookup its own answer',
  );
  t.true(most <= 2, `at most two statements at once (${most})`);
  t.true(statements < tags.length / 10, `${statements} statements for ${tags.length} lookups`);
});
