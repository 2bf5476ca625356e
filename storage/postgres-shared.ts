// Statements the SQL metadata stores share.
import type { Queryable } from './db.js';

/** The id of the repository named by the statement's $1. */
export const REPO_ID = '(SELECT id FROM repositories WHERE name = $1)';

/**
 * Common table expressions ending in `repo`: the id of the repository named by $1, made on first
 * use. An existing repository's row is only read, never updated: an upsert's update locks the row
 * until the transaction ends, and every other link or save into that repository waited for it
 * (on a blob link, for as long as its bytes were placed: an fsync, on S3 a whole-object copy).
 * Only the first use of a new repository, which inserts the row, makes a concurrent first use wait.
 */
export const REPOSITORY_ID_CTES = `found AS (SELECT id FROM repositories WHERE name = $1),
  created AS (INSERT INTO repositories (name) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM found)
              ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id),
  repo AS (SELECT id FROM found UNION ALL SELECT id FROM created)`;

/** The id of a repository, made on first use. */
export async function repositoryId(tx: Queryable, name: string): Promise<number> {
  const rows = await tx.query<{ id: number }>(`WITH ${REPOSITORY_ID_CTES} SELECT id FROM repo`, [name]);
  return rows[0]!.id;
}

/** Sizes by digest from a statement taking the repository ($1) and the digests ($2). */
export async function sizesOf(db: Queryable, sql: string, repository: string, digests: string[]): Promise<Map<string, number>> {
  if (digests.length === 0) return new Map();
  const rows = await db.query<{ digest: string; size: number }>(sql, [repository, digests]);
  return new Map(rows.map((r) => [r.digest, r.size]));
}
