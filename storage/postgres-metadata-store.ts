// MetadataStore in SQL, the same statements for a PostgreSQL server (`pg`) and for PGlite. The
// manifests and uploads have files of their own.
import type { Db, Queryable } from './db.js';
import { UploadEndedError } from './errors.js';
import { lockDigest, lockedTransaction } from './locks.js';
import { inOrder, type MetadataStore } from './metadata-store.js';
import { createPostgresManifests } from './postgres-manifests.js';
import { REPO_ID, REPOSITORY_ID_CTES, refuseWhileNamed, sizesOf } from './postgres-shared.js';
import { createPostgresUploads } from './postgres-uploads.js';

export function createPostgresMetadataStore(db: Db): MetadataStore {
  const sizes = (sql: string, repository: string, digests: string[]): Promise<Map<string, number>> => sizesOf(db, sql, repository, digests);

  return {
    repositories: {
      async exists(name) {
        return (await db.query('SELECT 1 FROM repositories WHERE name = $1', [name])).length > 0;
      },
      async list(page) {
        const rows = await db.query<{ name: string }>(
          `SELECT name FROM repositories r
           WHERE ($1::text IS NULL OR name > $1)
             AND ($3::text IS NULL OR name = $3 OR left(name, length($3) + 1) = $3 || '/')
             AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
           ORDER BY name LIMIT $2`,
          [page.last ?? null, page.limit, page.project ?? null],
        );
        return rows.map((r) => r.name);
      },
      async removeEmpty(project) {
        const rows = await db.query<{ name: string }>(
          `DELETE FROM repositories r
           WHERE (name = $1 OR left(name, length($1) + 1) = $1 || '/')
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
           RETURNING name`,
          [project],
        );
        return rows.map((r) => r.name).sort();
      },
    },

    blobs: {
      async find(repository, digest) {
        const rows = await db.query<{ size: number }>(
          `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
           WHERE rb.repository_id = ${REPO_ID} AND rb.digest = $2`,
          [repository, digest],
        );
        return rows[0]?.size;
      },
      findMany: (repository, digests) =>
        sizes(
          `SELECT b.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
           WHERE rb.repository_id = ${REPO_ID} AND rb.digest = ANY($2::text[])`,
          repository,
          digests,
        ),
      async save(repository, digest, size, { place, endUpload } = {}) {
        // One statement, so one round trip: foreign keys are checked at its end, after the CTEs ran.
        // Re-linking refreshes linked_at, which garbage collection's grace window reads. The upload
        // session (if any) ends in the same statement: it lives exactly until its blob is linked.
        // The repository's row is only read when it exists (REPOSITORY_ID_CTES): on a PostgreSQL
        // server this transaction lasts while the bytes are placed.
        // With an upload to end, only the statement that ends it links, or one that links the same
        // blob again (a client's retried PUT racing its first): two PUTs of one session with other
        // bytes at once (on two replicas, or a DELETE racing a PUT) each saw it claimed, and both
        // linked a blob (adversarial testing); the other answers as for a session that is gone.
        const link = async (q: Queryable): Promise<void> => {
          const linked = await q.query(
            `WITH blob AS (INSERT INTO blobs (digest, size) VALUES ($2, $3) ON CONFLICT (digest) DO NOTHING),
                ended AS (DELETE FROM uploads WHERE id = $4::uuid RETURNING id),
                ${REPOSITORY_ID_CTES}
           INSERT INTO repository_blobs (repository_id, digest) SELECT id, $2 FROM repo
           WHERE $4::uuid IS NULL OR EXISTS (SELECT 1 FROM ended)
              OR EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = repo.id AND rb.digest = $2)
           ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = now() RETURNING digest`,
            [repository, digest, size, endUpload ?? null],
          );
          if (linked.length === 0) throw new UploadEndedError(endUpload ?? '');
        };
        if (!place) {
          await link(db);
          return;
        }
        if (db.withKeyLock) {
          // PGlite: under the digest's lock (which collection takes too), place the bytes, then
          // link them in one statement that commits on its own: two round trips fewer than a
          // transaction. Only this digest waits meanwhile: placing ends with an fsync of the blob's
          // directory, and when every statement waited for it (the whole database held), pushes of
          // small blobs from 16 clients at once were a third slower (bench row 17). A failure or
          // crash in between leaves a verified blob file that no row knows, which collection
          // removes (gc.ts, sweepOrphans) or a later push links.
          await db.withKeyLock(digest, async () => {
            await place();
            await link(db);
          });
          return;
        }
        // Linking and placing the bytes happen under the digest's lock, which collection takes too.
        await db.transaction(async (tx) => {
          // Sent together, run in order on the transaction's one connection: the lock, then the link.
          await Promise.all([lockDigest(tx, digest), link(tx)]);
          await place();
        });
      },
      async remove(repository, digest) {
        // Under the digest's lock, which a manifest's save takes for each blob it names.
        return lockedTransaction(db, digest, async (tx) => {
          await refuseWhileNamed(tx, repository, digest, 'blob');
          const rows = await tx.query(`DELETE FROM repository_blobs WHERE repository_id = ${REPO_ID} AND digest = $2 RETURNING digest`, [
            repository,
            digest,
          ]);
          return rows.length > 0;
        });
      },
    },

    manifests: createPostgresManifests(db),

    tags: {
      async find(repository, tag) {
        const rows = await db.query<{ manifest_digest: string }>(
          `SELECT manifest_digest FROM tags WHERE repository_id = ${REPO_ID} AND name = $2`,
          [repository, tag],
        );
        return rows[0]?.manifest_digest;
      },
      async list(repository, page) {
        // One statement and one value: the page as a newline-separated string (tag names match
        // [A-Za-z0-9_][A-Za-z0-9._-]*, never a newline). As rows, 50,000 tags took 0.7-1.4 s in
        // PGlite (a JavaScript object per row, then across its process boundary); as one string
        // 40-50 ms (bench/, "Reads at scale", cold full tag list). The aggregate takes the rows in
        // the order of the sorted subquery it reads directly, as PostgreSQL's documentation of
        // aggregate functions describes; an ORDER BY inside string_agg sorted the 50,000 names a
        // second time (PostgreSQL 15: 34 -> 18 ms for the statement). inOrder checks it held.
        const rows = await db.query<{ names: string | null }>(
          `SELECT (SELECT string_agg(name, E'\\n')
                   FROM (SELECT name FROM tags WHERE repository_id = r.id AND ($2::text IS NULL OR name > $2)
                         ORDER BY name LIMIT $3) page) AS names
           FROM repositories r WHERE r.name = $1`,
          [repository, page.last ?? null, page.limit],
        );
        if (rows.length === 0) return undefined;
        const names = rows[0]!.names;
        return names === null ? [] : inOrder(names.split('\n'));
      },
      async listJson(repository, max) {
        // The database joins the names with '","' (as list does with newlines, in the sorted
        // subquery's order): no name needs escaping in JSON, as tags.name only holds names of the
        // tag grammar (CHECK constraint, migration 011). A whole list of 50,000 tags answered
        // from names split into strings and JSON.stringify'd spent 25-30 ms of a cold GET in
        // JavaScript, 16 of it in the garbage collector (bench/, "Reads at scale").
        const rows = await db.query<{ names: string | null; count: number }>(
          `SELECT p.names, p.count
           FROM repositories r CROSS JOIN LATERAL (
             SELECT string_agg(name, '","') AS names, count(*)::int AS count
             FROM (SELECT name FROM tags WHERE repository_id = r.id ORDER BY name LIMIT $2) page
           ) p
           WHERE r.name = $1`,
          [repository, max + 1],
        );
        if (rows.length === 0) return undefined;
        const { names, count } = rows[0]!;
        return { count, json: names === null ? '[]' : `["${names}"]` };
      },
      async listDetailed(repository, page) {
        // One statement: a repository without tags gives one row of nulls, an unknown one none.
        const rows = await db.query<{ name: string | null; manifest_digest: string; updated_at: Date }>(
          `SELECT t.name, t.manifest_digest, t.updated_at FROM repositories r
           LEFT JOIN LATERAL (SELECT name, manifest_digest, updated_at FROM tags
                              WHERE repository_id = r.id AND ($2::text IS NULL OR name > $2)
                              ORDER BY name LIMIT $3) t ON true
           WHERE r.name = $1 ORDER BY t.name`,
          [repository, page.last ?? null, page.limit],
        );
        if (rows.length === 0) return undefined;
        return rows
          .filter((r): r is typeof r & { name: string } => r.name !== null)
          .map((r) => ({ name: r.name, digest: r.manifest_digest, updatedAt: new Date(r.updated_at) }));
      },
      async remove(repository, tag) {
        const rows = await db.query(`DELETE FROM tags WHERE repository_id = ${REPO_ID} AND name = $2 RETURNING name`, [repository, tag]);
        return rows.length > 0;
      },
    },

    uploads: createPostgresUploads(db),

    close: () => db.close(),
  };
}
