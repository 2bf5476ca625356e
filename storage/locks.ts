// Per-digest locks shared by the metadata store and garbage collection: advisory locks on a
// PostgreSQL server, locks in this process on the embedded database (whose data directory only
// this process opens, storage/data-directory-lock.ts).
import type { Db, Queryable } from './db.js';

/**
 * Serialises linking, referencing and collecting one digest (transaction-scoped advisory lock).
 * An exclusive transaction (PGlite) needs none: a statement fewer per blob pushed.
 */
export async function lockDigest(tx: Queryable, digest: string): Promise<void> {
  if (tx.exclusive) return;
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [digest]);
}

/**
 * Runs `fn` in a transaction that holds `key`'s lock. On PGlite the lock is taken before the
 * transaction begins, never inside it: a transaction holds back every other statement, and a
 * blob's push holds its digest's lock while its link statement waits for the database, so the
 * other order could deadlock.
 */
export function lockedTransaction<T>(db: Db, key: string, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  if (db.withKeyLock) return db.withKeyLock(key, () => db.transaction(fn));
  return db.transaction(async (tx) => {
    await lockDigest(tx, key);
    return fn(tx);
  });
}
