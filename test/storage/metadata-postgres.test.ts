// The metadata store on a real PostgreSQL server: a database of its own for this file, dropped at
// the end. Skipped with a message when no server answers (failing under SIGNET_TEST_REQUIRE_ALL=1).
import { createPostgresDb, type Db } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { repositoryId } from '../../storage/postgres-shared.js';
import { metadataStoreConformance, randomDigest, randomManifest, randomRepository } from '../conformance/metadata-store.js';
import { testWithCommands } from '../helpers/env.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { createMigratedTestDb } from '../helpers/migrated-db.js';
import { withinSeconds } from '../helpers/wait.js';

const test = testWithCommands('metadata store on PostgreSQL', [], { postgres: true });

metadataStoreConformance(test, async () => {
  const database = await createTestDatabase();
  const db = await createPostgresDb(database.url);
  try {
    await migrate(db);
  } catch (err) {
    await db.close();
    await database.drop();
    throw err;
  }
  const store = createPostgresMetadataStore(db);
  return {
    store,
    async cleanup() {
      await store.close();
      await database.drop();
    },
  };
});

test('migrate applies nothing the second time', async (t) => {
  const database = await createTestDatabase();
  t.teardown(() => database.drop());
  const db = await createPostgresDb(database.url);
  t.teardown(() => db.close());
  const applied = await migrate(db);
  t.true(applied.includes('001_registry.sql'));
  // Up to date, as on every restart but an upgrade's: one statement, no transaction or lock.
  const statements: string[] = [];
  const counted: Db = {
    ...db,
    query: (text, params) => (statements.push(text), db.query(text, params)),
    transaction: (fn) => (statements.push('BEGIN'), db.transaction(fn)),
  };
  t.deepEqual(await migrate(counted), []);
  t.deepEqual(statements, ['SELECT version FROM schema_migrations']);
  const versions = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
  t.is(versions.length, applied.length);
});

test('concurrent migrate() calls on a fresh database both succeed, applying each migration once', async (t) => {
  const database = await createTestDatabase();
  t.teardown(() => database.drop());
  // Separate pools, as separate replicas starting together would have.
  const replicas = await Promise.all(Array.from({ length: 4 }, () => createPostgresDb(database.url, { max: 2 })));
  t.teardown(() => Promise.all(replicas.map((db) => db.close())).then(() => undefined));

  const results = await Promise.allSettled(replicas.map((db) => migrate(db)));
  t.deepEqual(
    results.map((r) => r.status),
    replicas.map(() => 'fulfilled'),
    JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))),
  );
  const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  t.deepEqual(
    applied.filter((file) => file === '001_registry.sql'),
    ['001_registry.sql'],
    'one replica applied it',
  );
  const versions = await replicas[0]!.query<{ version: number }>('SELECT version FROM schema_migrations');
  t.is(versions.length, new Set(applied).size);

  // The schema is whole: the store works on it.
  const store = createPostgresMetadataStore(replicas[1]!);
  const repository = randomRepository();
  const manifest = randomManifest();
  await store.manifests.save(repository, manifest, [], 'latest');
  t.is(await store.tags.find(repository, 'latest'), manifest.digest);
});

test('statements are prepared once per connection, and not at all with preparedStatements off', async (t) => {
  const database = await createTestDatabase();
  t.teardown(() => database.drop());
  // One connection, so the statement that counts sees what the one before it left.
  const countPrepared = async (preparedStatements: boolean): Promise<number> => {
    const db = await createPostgresDb(database.url, { max: 1, preparedStatements });
    try {
      await db.query('SELECT $1::text AS echo', ['a']);
      await db.query('SELECT $1::text AS echo', ['b']);
      const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_prepared_statements WHERE NOT from_sql');
      return rows[0]!.n;
    } finally {
      await db.close();
    }
  };
  // Named: the echo and the count itself (pgbouncer's transaction mode loses such a statement).
  t.is(await countPrepared(true), 2);
  t.is(await countPrepared(false), 0);
});

test("a transaction that looked up a repository's id holds back no other write into that repository", async (t) => {
  // A manifest save on PostgreSQL takes the repository's id in its transaction (for its lock's
  // key); as an upsert that locked the row until the commit, and every blob linked into the
  // repository meanwhile waited on its foreign key check.
  const { db, close } = await createMigratedTestDb();
  t.teardown(close);
  const store = createPostgresMetadataStore(db);
  const repository = randomRepository();
  await store.blobs.save(repository, randomDigest(), 1);
  const other = randomDigest();
  await db.transaction(async (tx) => {
    await repositoryId(tx, repository);
    await withinSeconds(10, store.blobs.save(repository, other, 2));
  });
  t.is(await store.blobs.find(repository, other), 2);
});
