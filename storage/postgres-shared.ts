// Statements the SQL metadata stores share.
import type { Queryable } from './db.js';
import { StillReferencedError } from './errors.js';

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

/**
 * The manifests of `repository` that name `digest` as a `kind` (an index its platform manifests,
 * a manifest its config and layers), in digest order; at most `limit` of them.
 */
export async function manifestsNaming(
  q: Queryable,
  repository: string,
  digest: string,
  kind: 'blob' | 'manifest',
  limit?: number,
): Promise<string[]> {
  const rows = await q.query<{ manifest_digest: string }>(
    `SELECT manifest_digest FROM manifest_references
     WHERE repository_id = ${REPO_ID} AND child_digest = $2 AND child_kind = $3 ORDER BY manifest_digest LIMIT $4`,
    [repository, digest, kind, limit ?? null],
  );
  return rows.map((r) => r.manifest_digest);
}

/**
 * Refuses a delete by digest while a manifest of the repository still names it: that manifest
 * would be served broken (as GitLab's registry and zot refuse it). Run under the digest's lock,
 * which a manifest's save takes for everything it names, so nothing comes to name it meanwhile.
 */
export async function refuseWhileNamed(q: Queryable, repository: string, digest: string, kind: 'blob' | 'manifest'): Promise<void> {
  const by = await manifestsNaming(q, repository, digest, kind, 3);
  if (by.length > 0) throw new StillReferencedError(kind, digest, by);
}
