// The metadata store on embedded PostgreSQL (PGlite), the zero-setup default.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import test from 'ava';
import { createPgliteDb } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { metadataStoreConformance, randomManifest, randomRepository } from '../conformance/metadata-store.js';

metadataStoreConformance(test, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-pglite-'));
  const db = await createPgliteDb(path.join(dir, 'database'));
  await migrate(db);
  const store = createPostgresMetadataStore(db);
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

test('migrate applies each migration once, also across a restart, and the data persists', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-pglite-migrate-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const dataDirectory = path.join(dir, 'database');
  const repository = randomRepository();
  const manifest = randomManifest();

  const first = await createPgliteDb(dataDirectory);
  const applied = await migrate(first);
  t.true(applied.includes('001_registry.sql'));
  t.deepEqual(applied, [...applied].sort());
  t.deepEqual(await migrate(first), [], 'nothing the second time');
  await createPostgresMetadataStore(first).manifests.save(repository, manifest, [], 'latest');
  const versions = await first.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  t.is(versions.length, applied.length);
  await first.close();

  const reopened = await createPgliteDb(dataDirectory);
  t.teardown(() => reopened.close());
  t.deepEqual(await migrate(reopened), [], 'nothing after a restart');
  const store = createPostgresMetadataStore(reopened);
  t.is(await store.tags.find(repository, 'latest'), manifest.digest);
  t.deepEqual(await store.manifests.find(repository, manifest.digest), manifest);
});

test("an upload session's bookkeeping commits without waiting for the WAL flush; the next durable commit flushes it", async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-pglite-unflushed-'));
  const db = await createPgliteDb(path.join(dir, 'database'));
  t.teardown(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });
  await migrate(db);
  const store = createPostgresMetadataStore(db);
  // PGlite has no WAL writer: what a commit did not flush stays unflushed until one that does.
  const unflushed = async (): Promise<boolean> =>
    (await db.query<{ behind: boolean }>('SELECT pg_current_wal_insert_lsn() > pg_current_wal_flush_lsn() AS behind'))[0]!.behind;
  const repository = randomRepository();
  const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];

  t.false(await unflushed(), 'the migrations are on disk');
  await store.uploads.create(a, repository);
  t.true(await unflushed(), 'a new upload session is committed unflushed');
  t.true(await store.uploads.remove(a));
  t.false(await unflushed(), 'ending one is durable, and flushes what came before it');
  await store.uploads.create(b, repository);
  await store.uploads.create(c, repository);
  t.true(await store.uploads.remove(b));
  t.false(await unflushed());
  t.is((await store.uploads.claim(c, repository))?.id, c);
  t.true(await unflushed(), 'claiming one for its commit is unflushed too');
  t.true(await store.uploads.remove(c));
  t.false(await unflushed());
});
