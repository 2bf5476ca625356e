// MetadataStore in SQL, the same statements for a PostgreSQL server (`pg`) and for PGlite.
import type { Db, Queryable } from './db.js';
import { MissingBlobsError } from './errors.js';
import type {
  ManifestRecord,
  MetadataStore,
  Referrer,
  UploadRecord,
} from './metadata-store.js';

const REPO_ID = '(SELECT id FROM repositories WHERE name = $1)';

interface ManifestRow {
  digest: string;
  media_type: string;
  content: Buffer;
  size: number;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: Record<string, string> | null;
}

/**
 * Serialises linking, referencing and collecting one digest (transaction-scoped advisory lock).
 * An exclusive transaction (PGlite) needs none: a statement fewer per blob pushed.
 */
export async function lockDigest(tx: Queryable, digest: string): Promise<void> {
  if (tx.exclusive) return;
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [digest]);
}

export function createPostgresMetadataStore(db: Db): MetadataStore {
  async function repositoryId(tx: Queryable, name: string): Promise<number> {
    const rows = await tx.query<{ id: number }>(
      `INSERT INTO repositories (name) VALUES ($1)
       ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id`,
      [name],
    );
    return rows[0]!.id;
  }

  async function sizes(sql: string, repository: string, digests: string[]): Promise<Map<string, number>> {
    if (digests.length === 0) return new Map();
    const rows = await db.query<{ digest: string; size: number }>(sql, [repository, digests]);
    return new Map(rows.map((r) => [r.digest, r.size]));
  }

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
        const link = (q: Queryable) =>
          q.query(
            `WITH blob AS (INSERT INTO blobs (digest, size) VALUES ($2, $3) ON CONFLICT (digest) DO NOTHING),
                ended AS (DELETE FROM uploads WHERE id = $4::uuid),
                repo AS (INSERT INTO repositories (name) VALUES ($1)
                         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id)
           INSERT INTO repository_blobs (repository_id, digest) SELECT id, $2 FROM repo
           ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = now()`,
            [repository, digest, size, endUpload ?? null],
          );
        if (!place) {
          await link(db);
          return;
        }
        if (db.exclusively) {
          // PGlite: with every other statement held back (collection's included), place the bytes,
          // then link them in one statement that commits on its own: two round trips fewer than a
          // transaction. A failure or crash in between leaves a verified blob file that no row
          // knows, which collection removes (gc.ts, sweepOrphans) or a later push links.
          await db.exclusively(async (q) => {
            await place();
            await link(q);
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
        const rows = await db.query(
          `DELETE FROM repository_blobs WHERE repository_id = ${REPO_ID} AND digest = $2 RETURNING digest`,
          [repository, digest],
        );
        return rows.length > 0;
      },
    },

    manifests: {
      async find(repository, digest) {
        const rows = await db.query<ManifestRow>(
          `SELECT digest, media_type, content, size, artifact_type, subject_digest, annotations
           FROM manifests WHERE repository_id = ${REPO_ID} AND digest = $2`,
          [repository, digest],
        );
        const row = rows[0];
        return row && toManifestRecord(row);
      },
      findMany: (repository, digests) =>
        sizes(
          `SELECT digest, size FROM manifests WHERE repository_id = ${REPO_ID} AND digest = ANY($2::text[])`,
          repository,
          digests,
        ),
      async save(repository, manifest, references, tag) {
        await db.transaction(async (tx) => {
          // The blobs must still exist when the manifest commits: collection of a digest takes the
          // same lock, so it either finishes first (and this fails) or waits for this reference.
          const blobDigests = [...new Set(references.filter((r) => r.kind === 'blob').map((r) => r.digest))].sort();
          for (const digest of blobDigests) await lockDigest(tx, digest);
          if (blobDigests.length > 0) {
            const present = await tx.query<{ digest: string }>('SELECT digest FROM blobs WHERE digest = ANY($1::text[])', [blobDigests]);
            const found = new Set(present.map((r) => r.digest));
            const missing = blobDigests.filter((d) => !found.has(d));
            if (missing.length > 0) throw new MissingBlobsError(missing);
          }
          const id = await repositoryId(tx, repository);
          // Collection of an untagged manifest takes this lock too: it never deletes a manifest
          // that this transaction is tagging or re-pushing.
          await lockDigest(tx, `manifest:${id}:${manifest.digest}`);
          const inserted = await tx.query(
            `INSERT INTO manifests
               (repository_id, digest, media_type, content, size, artifact_type, subject_digest, annotations)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (repository_id, digest) DO NOTHING RETURNING digest`,
            [
              id,
              manifest.digest,
              manifest.mediaType,
              manifest.content,
              manifest.size,
              manifest.artifactType ?? null,
              manifest.subject ?? null,
              manifest.annotations ? JSON.stringify(manifest.annotations) : null,
            ],
          );
          if (inserted.length > 0 && references.length > 0) {
            await tx.query(
              `INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
               SELECT $1, $2, d, k FROM unnest($3::text[], $4::text[]) AS t (d, k)
               ON CONFLICT DO NOTHING`,
              [id, manifest.digest, references.map((r) => r.digest), references.map((r) => r.kind)],
            );
          }
          if (tag !== undefined) {
            await tx.query(
              `INSERT INTO tags (repository_id, name, manifest_digest) VALUES ($1, $2, $3)
               ON CONFLICT (repository_id, name)
               DO UPDATE SET manifest_digest = EXCLUDED.manifest_digest, updated_at = now()`,
              [id, tag, manifest.digest],
            );
          }
        });
      },
      async remove(repository, digest) {
        const rows = await db.query(
          `DELETE FROM manifests WHERE repository_id = ${REPO_ID} AND digest = $2 RETURNING digest`,
          [repository, digest],
        );
        return rows.length > 0;
      },
      async parents(repository, digest) {
        const rows = await db.query<{ manifest_digest: string }>(
          `SELECT manifest_digest FROM manifest_references
           WHERE repository_id = ${REPO_ID} AND child_digest = $2 AND child_kind = 'manifest' ORDER BY manifest_digest`,
          [repository, digest],
        );
        return rows.map((r) => r.manifest_digest);
      },
      async referrers(repository, subject) {
        const rows = await db.query<ManifestRow>(
          `SELECT digest, media_type, size, artifact_type, annotations
           FROM manifests WHERE repository_id = ${REPO_ID} AND subject_digest = $2
           ORDER BY created_at, digest`,
          [repository, subject],
        );
        return rows.map(
          (r): Referrer => ({
            digest: r.digest,
            mediaType: r.media_type,
            size: r.size,
            ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
            ...(r.annotations ? { annotations: r.annotations } : {}),
          }),
        );
      },
    },

    tags: {
      async find(repository, tag) {
        const rows = await db.query<{ manifest_digest: string }>(
          `SELECT manifest_digest FROM tags WHERE repository_id = ${REPO_ID} AND name = $2`,
          [repository, tag],
        );
        return rows[0]?.manifest_digest;
      },
      async list(repository, page) {
        const repo = await db.query<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [repository]);
        if (repo.length === 0) return undefined;
        const rows = await db.query<{ name: string }>(
          `SELECT name FROM tags WHERE repository_id = $1 AND ($2::text IS NULL OR name > $2)
           ORDER BY name LIMIT $3`,
          [repo[0]!.id, page.last ?? null, page.limit],
        );
        return rows.map((r) => r.name);
      },
      async listDetailed(repository, page) {
        const repo = await db.query<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [repository]);
        if (repo.length === 0) return undefined;
        const rows = await db.query<{ name: string; manifest_digest: string; updated_at: Date }>(
          `SELECT name, manifest_digest, updated_at FROM tags WHERE repository_id = $1 AND ($2::text IS NULL OR name > $2)
           ORDER BY name LIMIT $3`,
          [repo[0]!.id, page.last ?? null, page.limit],
        );
        return rows.map((r) => ({ name: r.name, digest: r.manifest_digest, updatedAt: new Date(r.updated_at) }));
      },
      async remove(repository, tag) {
        const rows = await db.query(
          `DELETE FROM tags WHERE repository_id = ${REPO_ID} AND name = $2 RETURNING name`,
          [repository, tag],
        );
        return rows.length > 0;
      },
    },

    uploads: {
      async create(id, repository) {
        await db.query('INSERT INTO uploads (id, repository) VALUES ($1, $2)', [id, repository]);
      },
      async find(id) {
        return toUploadRecord(
          await db.query<UploadRow>(
            `SELECT u.id, u.repository, u.size, u.created_at, c.start_offset, c.size AS chunk_size, c.storage_key
             FROM uploads u LEFT JOIN upload_chunks c ON c.upload_id = u.id
             WHERE u.id = $1 ORDER BY c.start_offset`,
            [id],
          ),
        );
      },
      async addChunk(id, chunk) {
        // Only the write that finds the upload still at this offset may append (one statement).
        const added = await db.query(
          `WITH moved AS (UPDATE uploads SET size = size + $3, updated_at = now()
                          WHERE id = $1 AND size = $2 RETURNING id)
           INSERT INTO upload_chunks (upload_id, start_offset, size, storage_key)
           SELECT id, $2, $3, $4 FROM moved RETURNING upload_id`,
          [id, chunk.offset, chunk.size, chunk.key],
        );
        return added.length > 0;
      },
      async claim(id, repository) {
        return toUploadRecord(
          await db.query<UploadRow>(
            `WITH claimed AS (UPDATE uploads SET updated_at = now() WHERE id = $1 AND repository = $2
                              RETURNING id, repository, size, created_at)
             SELECT t.id, t.repository, t.size, t.created_at, c.start_offset, c.size AS chunk_size, c.storage_key
             FROM claimed t LEFT JOIN upload_chunks c ON c.upload_id = t.id ORDER BY c.start_offset`,
            [id, repository],
          ),
        );
      },
      async remove(id) {
        return (await db.query('DELETE FROM uploads WHERE id = $1 RETURNING id', [id])).length > 0;
      },
    },

    close: () => db.close(),
  };
}

interface UploadRow {
  id: string;
  repository: string;
  size: number;
  created_at: Date;
  start_offset: number | null;
  chunk_size: number | null;
  storage_key: string | null;
}

/** An upload and its chunks from rows of the upload joined with its chunks, in offset order. */
function toUploadRecord(rows: UploadRow[]): UploadRecord | undefined {
  const upload = rows[0];
  if (!upload) return undefined;
  return {
    id: upload.id,
    repository: upload.repository,
    size: upload.size,
    createdAt: upload.created_at,
    chunks: rows.filter((c) => c.storage_key !== null).map((c) => ({ offset: c.start_offset!, size: c.chunk_size!, key: c.storage_key! })),
  };
}

function toManifestRecord(row: ManifestRow): ManifestRecord {
  return {
    digest: row.digest,
    mediaType: row.media_type,
    content: row.content,
    size: row.size,
    ...(row.artifact_type ? { artifactType: row.artifact_type } : {}),
    ...(row.subject_digest ? { subject: row.subject_digest } : {}),
    ...(row.annotations ? { annotations: row.annotations } : {}),
  };
}
