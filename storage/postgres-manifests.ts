// The manifests of MetadataStore in SQL: content, references, referrers and parents.
import type { Db, Queryable } from './db.js';
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

/**
 * Saves a manifest, its references and its tag, and creates its repository on first use, unless a
 * blob it names ($12) is not stored: then nothing is written and the missing digests come back.
 * $1 repository, $2-$8 the manifest's columns, $9/$10 the references' digests and kinds, $11 the
 * tag or null. The rows one part inserts are visible to the next only through RETURNING (one
 * snapshot), and foreign keys are checked at the statement's end, after every part has run.
 */
const SAVE_MANIFEST = `
  WITH missing AS (
    SELECT coalesce(array_agg(d ORDER BY d), '{}') AS digests FROM unnest($12::text[]) AS d
    WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE digest = d)
  ),
  found AS (SELECT id FROM repositories WHERE name = $1),
  created AS (
    INSERT INTO repositories (name) SELECT $1
    WHERE NOT EXISTS (SELECT 1 FROM found) AND (SELECT digests FROM missing) = '{}'
    ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id
  ),
  repository AS (
    SELECT id FROM found UNION ALL SELECT id FROM created
  ),
  manifest AS (
    INSERT INTO manifests (repository_id, digest, media_type, content, size, artifact_type, subject_digest, annotations)
    SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM repository WHERE (SELECT digests FROM missing) = '{}'
    ON CONFLICT (repository_id, digest) DO NOTHING RETURNING repository_id
  ),
  refs AS (
    INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
    SELECT manifest.repository_id, $2, t.d, t.k FROM manifest, unnest($9::text[], $10::text[]) AS t (d, k)
    ON CONFLICT DO NOTHING
  ),
  tagged AS (
    INSERT INTO tags (repository_id, name, manifest_digest)
    SELECT id, $11, $2 FROM repository WHERE $11::text IS NOT NULL AND (SELECT digests FROM missing) = '{}'
    ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = EXCLUDED.manifest_digest, updated_at = now()
  )
  SELECT (SELECT digests FROM missing) AS missing`;

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
      const blobDigests = [...new Set(references.filter((r) => r.kind === 'blob').map((r) => r.digest))].sort();
      const checked = options.blobsPending ? [] : blobDigests;
      const params = [
        repository,
        manifest.digest,
        manifest.mediaType,
        manifest.content,
        manifest.size,
        manifest.artifactType ?? null,
        manifest.subject ?? null,
        manifest.annotations ? JSON.stringify(manifest.annotations) : null,
        references.map((r) => r.digest),
        references.map((r) => r.kind),
        tag ?? null,
        checked,
      ];
      // One statement does the whole save (a statement is atomic by itself): on the embedded
      // database, where each statement is a round trip to its thread and nothing else runs in
      // between, that is all; the profile of 16 concurrent manifest PUTs showed the database
      // thread busy with eight statements per PUT (BEGIN, a blob check, the repository, the
      // manifest, its references, its tag, COMMIT) and their hand-offs.
      const save = async (q: Queryable): Promise<void> => {
        const rows = await q.query<{ missing: string[] | null }>(SAVE_MANIFEST, params);
        const missing = rows[0]?.missing;
        if (missing && missing.length > 0) throw new MissingBlobsError(missing);
      };
      if (db.exclusively) return db.exclusively(save);
      await db.transaction(async (tx) => {
        // The blobs must still exist when the manifest commits: collection of a digest takes the
        // same lock, so it either finishes first (and this fails) or waits for this reference.
        for (const digest of blobDigests) await lockDigest(tx, digest);
        // Collection of an untagged manifest takes this lock too: it never deletes a manifest
        // that this transaction is tagging or re-pushing.
        await lockDigest(tx, `manifest:${await repositoryId(tx, repository)}:${manifest.digest}`);
        await save(tx);
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
