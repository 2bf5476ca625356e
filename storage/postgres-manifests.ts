// The manifests of MetadataStore in SQL: content, references, referrers and parents.
import type { Db, Queryable } from './db.js';
import { createBatchedLookup } from './batched-lookup.js';
import { ManifestReferenceError } from './errors.js';
import { lockDigest, lockedTransaction } from './locks.js';
import type { ManifestRecord, MetadataStore, Referrer } from './metadata-store.js';
import { manifestsNaming, refuseWhileNamed, REPO_ID, repositoryId, sizesOf } from './postgres-shared.js';

/**
 * SQL for the tag cosign attaches to the image of digest expression `digest` (sha256-<hex> and the
 * suffix, as sigstore/cosign.ts names it): the one spelling for every statement here.
 */
const cosignTagOf = (digest: string, suffix: string): string => `replace(${digest}, ':', '-') || ${suffix}`;

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
 * reference is not in the repository at its declared size: then nothing is written and the first
 * reference at fault comes back (its position in the list, and the size stored here or null).
 * $1 repository, $2-$8 the manifest's columns, $9/$10/$12 the references' digests, kinds and
 * declared sizes, $11 the tag or null, $13 whether blobs are checked (false for a mirror's blobs,
 * fetched later). A blob counts only when linked in this repository: a blob in another one is
 * not readable by whoever pushes here, and naming it must not make it pullable from here
 * (distribution does the same, through its per-repository link files). The rows one part inserts
 * are visible to the next only through RETURNING (one snapshot), and foreign keys are checked at
 * the statement's end, after every part has run.
 */
const SAVE_MANIFEST = `
  WITH found AS (SELECT id FROM repositories WHERE name = $1),
  problems AS (
    SELECT r.n, stored.size AS stored
    FROM unnest($9::text[], $10::text[], $12::bigint[]) WITH ORDINALITY AS r (d, k, s, n)
    LEFT JOIN LATERAL (
      SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
      WHERE r.k = 'blob' AND rb.repository_id = (SELECT id FROM found) AND rb.digest = r.d
      UNION ALL
      SELECT m.size FROM manifests m
      WHERE r.k = 'manifest' AND m.repository_id = (SELECT id FROM found) AND m.digest = r.d
    ) AS stored ON true
    WHERE (r.k = 'manifest' OR $13::boolean) AND stored.size IS DISTINCT FROM r.s
  ),
  clean AS (SELECT NOT EXISTS (SELECT 1 FROM problems) AS ok),
  created AS (
    INSERT INTO repositories (name) SELECT $1
    WHERE NOT EXISTS (SELECT 1 FROM found) AND (SELECT ok FROM clean)
    ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id
  ),
  repository AS (
    SELECT id FROM found UNION ALL SELECT id FROM created
  ),
  manifest AS (
    INSERT INTO manifests (repository_id, digest, media_type, content, size, artifact_type, subject_digest, annotations)
    SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM repository WHERE (SELECT ok FROM clean)
    ON CONFLICT (repository_id, digest) DO UPDATE SET pushed_at = now() RETURNING repository_id
  ),
  refs AS (
    INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
    SELECT manifest.repository_id, $2, t.d, t.k FROM manifest, unnest($9::text[], $10::text[]) AS t (d, k)
    ON CONFLICT DO NOTHING
  ),
  tagged AS (
    INSERT INTO tags (repository_id, name, manifest_digest)
    SELECT id, $11, $2 FROM repository WHERE $11::text IS NOT NULL AND (SELECT ok FROM clean)
    ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = EXCLUDED.manifest_digest, updated_at = now()
  )
  SELECT n::int AS n, stored::text AS stored FROM problems ORDER BY n LIMIT 1`;

/**
 * Manifests by tag, many at once: $1 repositories, $2 tags, each pair's position (from 1) in `i`.
 * Each pair is looked up as one lookup alone would be (LATERAL): written as a join of the pairs
 * with repositories and tags, the planner, counting some 20 tags per repository on average, looked
 * up a repository's tags by its id alone and filtered them by name, which for the one repository
 * holding 50,000 of them made a 32-pair statement take 0.6 s instead of 2 ms (bench/, "Reads at
 * scale"). The arrays are read through sub-selects so that the planner cannot see how many pairs
 * a batch has: seeing it, every custom plan of a small batch looked cheaper than the generic one,
 * so PostgreSQL planned each batch anew (1.8 ms of planning for 0.14 ms of execution; 12 custom
 * plans in 12 executions, pg_prepared_statements) instead of reusing one plan after five. The tag
 * and its manifest in one statement: on PGlite each statement is a round trip to its thread and a
 * bind and execute in its one WebAssembly engine.
 */
export const FIND_BY_TAGS = `
SELECT q.i, x.digest, x.media_type, x.content, x.size, x.artifact_type, x.subject_digest, x.annotations
FROM unnest((SELECT $1::text[]), (SELECT $2::text[])) WITH ORDINALITY AS q (repository, tag, i)
CROSS JOIN LATERAL (
  SELECT m.digest, m.media_type, m.content, m.size, m.artifact_type, m.subject_digest, m.annotations
  FROM tags t JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
  WHERE t.repository_id = (SELECT id FROM repositories WHERE name = q.repository) AND t.name = q.tag
) x`;

/**
 * Batched lookups by tag in flight at once, at most (fewer where the database has fewer
 * connections: PGlite's one). Two keep one batch at the database while the next gathers. With
 * every connection of the pool (10), a busy registry sent nearly one statement per manifest GET
 * (34,000 for 34,000 GETs by random tag), and a profile put an eighth of the server's time in
 * writing them to the sockets; with two, each statement carries the GETs that came meanwhile:
 * 25-35% less CPU per GET and 15-50% more GETs per second (wrk c32, 50,000 tags, PostgreSQL on the
 * same 2-core machine, alternating runs). A lookup still goes at once when a slot is free.
 */
const LOOKUP_SLOTS = 2;

export function createPostgresManifests(db: Db): MetadataStore['manifests'] {
  // Cache misses of manifest GETs by tag, batched while the database is busy (storage/batched-lookup.ts).
  const findByTag = createBatchedLookup<{ repository: string; tag: string }, ManifestRecord | undefined>(
    async (keys) => {
      const rows = await db.query<ManifestRow & { i: number | string }>(FIND_BY_TAGS, [
        keys.map((k) => k.repository),
        keys.map((k) => k.tag),
      ]);
      const found: (ManifestRecord | undefined)[] = new Array<ManifestRecord | undefined>(keys.length).fill(undefined);
      for (const row of rows) found[Number(row.i) - 1] = toManifestRecord(row);
      return found;
    },
    { slots: () => Math.min(db.connections, LOOKUP_SLOTS) },
  );

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
    findByTag: (repository, tag) => findByTag({ repository, tag }),
    findMany: (repository, digests) =>
      sizes(`SELECT digest, size FROM manifests WHERE repository_id = ${REPO_ID} AND digest = ANY($2::text[])`, repository, digests),
    async save(repository, manifest, references, tag, options = {}) {
      const blobDigests = [...new Set(references.filter((r) => r.kind === 'blob').map((r) => r.digest))].sort();
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
        references.map((r) => r.size),
        !options.blobsPending,
      ];
      // One statement does the whole save (a statement is atomic by itself): on the embedded
      // database, where each statement is a round trip to its thread and nothing else runs in
      // between, that is all; the profile of 16 concurrent manifest PUTs showed the database
      // thread busy with eight statements per PUT (BEGIN, a blob check, the repository, the
      // manifest, its references, its tag, COMMIT) and their hand-offs. The check of the
      // references is part of it too: as a statement of its own before the save, it was half the
      // statements of a manifest PUT (issue 17).
      const save = async (q: Queryable): Promise<void> => {
        const rows = await q.query<{ n: number; stored: string | null }>(SAVE_MANIFEST, params);
        const fault = rows[0];
        if (!fault) return;
        const reference = references[fault.n - 1]!;
        throw new ManifestReferenceError(repository, reference, fault.stored === null ? undefined : Number(fault.stored));
      };
      if (db.exclusively) return db.exclusively(save);
      await db.transaction(async (tx) => {
        // The blobs must still exist when the manifest commits: collection of a digest takes the
        // same lock, so it either finishes first (and this fails) or waits for this reference.
        // Blob locks come before the repository's row is read (or made), as in blobs.save, which
        // holds a blob's lock while it makes the row.
        for (const digest of blobDigests) await lockDigest(tx, digest);
        // Collection of an untagged manifest takes its `manifest:` lock and then checks, in a
        // statement of its own, that no tag or index names it: so this save takes the locks of
        // the manifests it lists (an index's platform manifests) as well as its own. With its own
        // alone, collection deleted a platform manifest while an index listing it was saved, both
        // committed, and the index was served with a child gone (adversarial testing, PostgreSQL).
        // Sorted: two saves never wait for each other in a cycle.
        const id = await repositoryId(tx, repository);
        const listed = references.filter((r) => r.kind === 'manifest').map((r) => r.digest);
        for (const digest of [...new Set([...listed, manifest.digest])].sort()) await lockDigest(tx, `manifest:${id}:${digest}`);
        await save(tx);
      });
    },
    async remove(repository, digest) {
      const [found] = await db.query<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [repository]);
      if (!found) return false;
      // Under the manifest's lock, which an index's save takes for each manifest it lists.
      return lockedTransaction(db, `manifest:${found.id}:${digest}`, async (tx) => {
        await refuseWhileNamed(tx, repository, digest, 'manifest');
        const rows = await tx.query('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2 RETURNING digest', [found.id, digest]);
        if (rows.length === 0) return false;
        // cosign attaches a signature, attestation or SBOM under a tag named after the image's
        // digest in the image's repository (sha256-<hex>.sig, .att, .sbom); gone with the image,
        // as Harbor removes an image's signatures with it. The manifests they named stay, untagged,
        // for gc --delete-untagged. Not at GC time by the tag's shape alone: with COSIGN_REPOSITORY
        // the signatures live in another repository (or registry) than their image, and a tag whose
        // image is not in its repository may well be valid (adversarial testing).
        await tx.query(
          `DELETE FROM tags WHERE repository_id = $1
             AND name IN (${cosignTagOf('$2', "'.sig'")}, ${cosignTagOf('$2', "'.att'")}, ${cosignTagOf('$2', "'.sbom'")})`,
          [found.id, digest],
        );
        return true;
      });
    },
    parents: (repository, digest) => manifestsNaming(db, repository, digest, 'manifest'),
    async signedAmong(repository, digests, cosignArtifactType) {
      if (digests.length === 0) return new Set();
      const rows = await db.query<{ digest: string }>(
        `WITH repo AS (SELECT id FROM repositories WHERE name = $1)
         SELECT d AS digest FROM unnest($2::text[]) AS d, repo
         WHERE EXISTS (SELECT 1 FROM signatures s WHERE s.repository_id = repo.id AND s.manifest_digest = d)
            OR EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = repo.id AND t.name = ${cosignTagOf('d', "'.sig'")})
            OR EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = repo.id AND m.subject_digest = d AND m.artifact_type = $3)`,
        [repository, [...new Set(digests)], cosignArtifactType],
      );
      return new Set(rows.map((r) => r.digest));
    },
    async referrers(repository, subject, page) {
      // The page is chosen from each referrer's size of annotations, then only its own are read.
      const rows = await db.query<{
        digest: string;
        media_type: string;
        size: number;
        artifact_type: string | null;
        annotation_bytes: number;
      }>(
        // An artifact type is a media type of at most 1 KiB (manifest-parse.ts); one stored before
        // that was checked is not listed (a page of 3.9 MB ones exhausted the server's memory).
        `SELECT digest, media_type, size, CASE WHEN octet_length(artifact_type) <= 1024 THEN artifact_type END AS artifact_type,
                coalesce(octet_length(annotations::text), 0)::int AS annotation_bytes
         FROM manifests WHERE repository_id = ${REPO_ID} AND subject_digest = $2
           AND ($3::text IS NULL OR artifact_type = $3) AND ($4::text IS NULL OR digest > $4)
         ORDER BY digest LIMIT $5`,
        [repository, subject, page.artifactType ?? null, page.after ?? null, page.limit + 1],
      );
      let bytes = 0;
      let shown = 0;
      for (const row of rows.slice(0, page.limit)) {
        bytes += page.annotationBytes === undefined ? 0 : row.annotation_bytes;
        if (shown > 0 && bytes > page.annotationBytes!) break;
        shown += 1;
      }
      const listed = rows.slice(0, shown);
      const annotations = new Map<string, Record<string, string>>();
      const annotated = listed.filter((r) => r.annotation_bytes > 0).map((r) => r.digest);
      if (page.annotationBytes !== undefined && annotated.length > 0) {
        const found = await db.query<{ digest: string; annotations: Record<string, string> }>(
          `SELECT digest, annotations FROM manifests WHERE repository_id = ${REPO_ID} AND digest = ANY($2::text[])`,
          [repository, annotated],
        );
        for (const row of found) annotations.set(row.digest, row.annotations);
      }
      return {
        referrers: listed.map((r): Referrer => {
          const own = annotations.get(r.digest);
          return {
            digest: r.digest,
            mediaType: r.media_type,
            size: r.size,
            ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
            ...(own ? { annotations: own } : {}),
          };
        }),
        ...(rows.length > shown ? { next: listed[listed.length - 1]!.digest } : {}),
      };
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
