// Statements the SQL metadata stores share.
import type { Queryable } from './db.js';

/** The id of the repository named by the statement's $1. */
export const REPO_ID = '(SELECT id FROM repositories WHERE name = $1)';

/** The id of a repository, made on first use. */
export async function repositoryId(tx: Queryable, name: string): Promise<number> {
  const rows = await tx.query<{ id: number }>(
    `INSERT INTO repositories (name) VALUES ($1)
     ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
    [name],
  );
  return rows[0]!.id;
}

/** Sizes by digest from a statement taking the repository ($1) and the digests ($2). */
export async function sizesOf(db: Queryable, sql: string, repository: string, digests: string[]): Promise<Map<string, number>> {
  if (digests.length === 0) return new Map();
  const rows = await db.query<{ digest: string; size: number }>(sql, [repository, digests]);
  return new Map(rows.map((r) => [r.digest, r.size]));
}
