// Migration 011 (storage/migrations/011_tag_names.sql) on a database an earlier version wrote: a
// mirror run could store whatever tag names its upstream listed. Those go (no client could pull
// them), the rest stays, and from then on the database refuses such a name.
import type { ExecutionContext } from 'ava';
import { createPgliteDb, createPostgresDb, type Db } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { testWithCommands } from '../helpers/env.js';
import { createTestDatabase } from '../helpers/postgres.js';

const test = testWithCommands('the tag name migration on PostgreSQL', [], { postgres: true });

const HOSTILE = ['a","b', 'back\\slash', 'line\nbreak', '.dot', 'x'.repeat(129)];

async function assertUpgrade(t: ExecutionContext, db: Db): Promise<void> {
  await migrate(db);
  // As an earlier version left it: no constraint, migration 011 not applied.
  await db.query('ALTER TABLE tags DROP CONSTRAINT tags_name_grammar');
  await db.query('DELETE FROM schema_migrations WHERE version = 11');
  await db.query(`INSERT INTO repositories (name) VALUES ('mirror/app')`);
  await db.query(`INSERT INTO manifests (repository_id, digest, media_type, content, size)
    SELECT id, 'sha256:' || repeat('a', 64), 'application/vnd.oci.image.manifest.v1+json', '\\x7b7d'::bytea, 2 FROM repositories`);
  for (const name of ['v1', 'latest', ...HOSTILE]) {
    await db.query(
      `INSERT INTO tags (repository_id, name, manifest_digest) SELECT id, $1, 'sha256:' || repeat('a', 64) FROM repositories`,
      [name],
    );
  }

  t.deepEqual(await migrate(db), ['011_tag_names.sql']);
  const tags = await db.query<{ name: string }>('SELECT name FROM tags ORDER BY name');
  t.deepEqual(
    tags.map((r) => r.name),
    ['latest', 'v1'],
  );
  t.is((await db.query('SELECT 1 FROM manifests')).length, 1, 'the manifest stays');
  for (const name of HOSTILE) {
    await t.throwsAsync(
      db.query(`INSERT INTO tags (repository_id, name, manifest_digest) SELECT id, $1, 'sha256:' || repeat('a', 64) FROM repositories`, [
        name,
      ]),
      undefined,
      JSON.stringify(name),
    );
  }
}

test('PGlite: an upgrade drops tags outside the grammar, keeps the rest, and refuses new ones', async (t) => {
  const db = await createPgliteDb(undefined);
  t.teardown(() => db.close());
  await assertUpgrade(t, db);
});

test('PostgreSQL: an upgrade drops tags outside the grammar, keeps the rest, and refuses new ones', async (t) => {
  const database = await createTestDatabase();
  t.teardown(() => database.drop());
  const db = await createPostgresDb(database.url, { max: 2 });
  t.teardown(() => db.close());
  await assertUpgrade(t, db);
});
