// Projects, keys and signatures at their store interface, on a real PostgreSQL server: a database
// of its own for this file, dropped at the end (failing under SIGNET_TEST_REQUIRE_ALL=1 without one).
import { createPostgresDb } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { trustStoresConformance } from '../conformance/trust-stores.js';
import { testWithCommands } from '../helpers/env.js';
import { createTestDatabase } from '../helpers/postgres.js';

const test = testWithCommands('project, key and signature stores on PostgreSQL', [], { postgres: true });

trustStoresConformance(test, async () => {
  const database = await createTestDatabase();
  const db = await createPostgresDb(database.url);
  await migrate(db);
  return {
    db,
    async cleanup() {
      await db.close();
      await database.drop();
    },
  };
});
