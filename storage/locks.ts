// Advisory locks shared by the metadata store and garbage collection.
import type { Queryable } from './db.js';

/**
 * Serialises linking, referencing and collecting one digest (transaction-scoped advisory lock).
 * An exclusive transaction (PGlite) needs none: a statement fewer per blob pushed.
 */
export async function lockDigest(tx: Queryable, digest: string): Promise<void> {
  if (tx.exclusive) return;
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [digest]);
}
