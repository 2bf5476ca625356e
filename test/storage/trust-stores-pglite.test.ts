// Projects, keys and signatures at their store interface, on embedded PostgreSQL (PGlite).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createPgliteDb } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { trustStoresConformance } from '../conformance/trust-stores.js';

trustStoresConformance(test, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-trust-pglite-'));
  const db = await createPgliteDb(path.join(dir, 'database'));
  await migrate(db);
  return {
    db,
    async cleanup() {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
