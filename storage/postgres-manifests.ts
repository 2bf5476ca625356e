// The manifests of MetadataStore in SQL: content, references, referrers and parents.
import type { Db } from './db.js';
import { MissingBlobsError } from './errors.js';
import { lockDigest } from './locks.js';
import type { ManifestRecord, MetadataStore, Referrer } from './metadata-store.js';
import { REPO_ID, repositoryId, sizesOf } from './postgres-shared.js';

interface ManifestRow {
  digest: string;
  media_type: string;
  content: Buffer;
  size: number;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: Record<string, string> | null;
}

export function createPostgresManifests(db: Db): MetadataStore['manifests'] {
  const sizes = (sql: string, repository: string, digests: string[]): Promise<Map<string, number>> => sizesOf(db, sql, repository, digests);
  return {
    async find(repository, digest) {
      const rows = await db.query<ManifestRow>(
        `SELECT digest, media_type, content, size, artifact_type, subject_digest, annotations
         FROM manifests WHERE repository_id = ${REPO_ID} AND digest = $2`,
        [repository, digest],
      );
      const row = rows[0];
      return row && toManifestRecord(row);
    },
    async findByTag(repository, tag) {
      // One statement instead of tag, then manifest: on PGlite each statement is a round trip to
      // its process and a parse and plan in its one WebAssembly thread (bench/, "Reads at scale").
      const rows = await db.query<ManifestRow>(
        `SELECT m.digest, m.media_type, m.content, m.size, m.artifact_type, m.subject_digest, m.annotations
         FROM tags t JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
         WHERE t.repository_id = ${REPO_ID} AND t.name = $2`,
        [repository, tag],
      );
      const row = rows[0];
      return row && toManifestRecord(row);
    },
    findMany: (repository, digests) =>
      sizes(`SELECT digest, size FROM manifests WHERE repository_id = ${REPO_ID} AND digest = ANY($2::text[])`, repository, digests),
    async save(repository, manifest, references, tag, options = {}) {
      await db.transaction(async (tx) => {
        // The blobs must still exist when the manifest commits: collection of a digest takes the
        // same lock, so it either finishes first (and this fails) or waits for this reference.
        const blobDigests = [...new Set(references.filter((r) => r.kind === 'blob').map((r) => r.digest))].sort();
        for (const digest of blobDigests) await lockDigest(tx, digest);
        if (blobDigests.length > 0 && !options.blobsPending) {
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
      const rows = await db.query(`DELETE FROM manifests WHERE repository_id = ${REPO_ID} AND digest = $2 RETURNING digest`, [
        repository,
        digest,
      ]);
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
      return rows.map((r): Referrer => ({
        digest: r.digest,
        mediaType: r.media_type,
        size: r.size,
        ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
        ...(r.annotations ? { annotations: r.annotations } : {}),
      }));
    },
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
