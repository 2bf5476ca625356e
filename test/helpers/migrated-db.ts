// A database of its own on the real PostgreSQL server, opened by the registry's own driver and
// migrated: what the store tests on PostgreSQL start from.
import { createPostgresDb, type Db } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { createTestDatabase } from './postgres.js';

export interface MigratedTestDb {
  db: Db;
  /** For a connection of the test's own (another replica, a lock held from outside). */
  url: string;
  /** Closes the connections and drops the database. */
  close(): Promise<void>;
}

export async function createMigratedTestDb(): Promise<MigratedTestDb> {
  const database = await createTestDatabase();
  let db: Db | undefined;
  try {
    db = await createPostgresDb(database.url);
    await migrate(db);
  } catch (err) {
    await db?.close();
    await database.drop();
    throw err;
  }
  const opened = db;
  return {
    db: opened,
    url: database.url,
    async close() {
      await opened.close();
      await database.drop();
    },
  };
}
