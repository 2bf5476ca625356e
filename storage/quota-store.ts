// Quota holds in the database: what a quota check let through, counted against the project's
// quota by every replica until its content is linked (server/quota.ts).
//
// A check takes the project's row lock (`FOR NO KEY UPDATE`, as Harbor locks its quota row; not
// the key lock, which would hold back foreign-key checks of rows naming the project meanwhile),
// then reads in one statement, so from one snapshot, the committed usage and the holds whose
// content is not linked yet, and adds its own hold when the bytes fit. Checks of one project are
// so judged one after the other, on one process or on several sharing a PostgreSQL server, and a
// hold stops counting the moment its blob or manifest is linked: removing it afterwards is
// clean-up, not accounting. A hold older than 90 s of a replica whose heartbeat stopped as long
// (storage/replica-store.ts) counts no more and is removed by the next check of its project.
import { randomUUID } from 'node:crypto';
import type { Db, Queryable } from './db.js';
import { createKeyLock } from './key-lock.js';

/** A replica's holds count while its heartbeat (every 30 s) was seen within this. */
const LIVE_SECONDS = 90;
/**
 * Whether a hold (SQL alias `hold`) of another replica counts: its replica's heartbeat is recent, or the hold is.
 * The second, because a replica busy enough to miss heartbeats (its database connections all
 * queued) still links what it held; only a hold that has outlived a heartbeat gap of a dead
 * replica stops counting.
 */
const counted = (hold: string): string => `(${hold}.created_at > now() - make_interval(secs => ${LIVE_SECONDS})
  OR ${hold}.replica IN (SELECT id FROM replicas WHERE seen_at > now() - make_interval(secs => ${LIVE_SECONDS})))`;

/** SQL: whether the repository named by expression `repository` is the project `project` or in it. */
const inProject = (repository: string, project: string): string =>
  `(${repository} = ${project} OR left(${repository}, length(${project}) + 1) = ${project} || '/')`;
/** SQL: whether the repository named by expression `repository` holds a manifest of `digest`. */
const manifestIn = (repository: string, digest: string): string =>
  `EXISTS (SELECT 1 FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = ${repository} AND m.digest = ${digest})`;

export interface ProjectUsage {
  /**
   * Bytes of the distinct blobs linked in the project's repositories, plus its manifests, each
   * repository's once (every repository stores its own copy of a manifest it holds).
   */
  usedBytes: number;
  /** Whether the asked-about digest is already linked somewhere in the project (adds nothing). */
  linked: boolean;
  /** Whether the repository asked about already holds a manifest of the digest (adds nothing). */
  manifest: boolean;
}

/**
 * What a project's repositories (`name` and `name/...`) hold; `digest`: whether it is linked
 * among them, and with `repository`, whether that repository holds a manifest of it. With
 * `replica`, also `heldBytes`: the holds of live replicas (and of `replica` itself) whose content
 * is not linked yet.
 */
export async function readUsage(
  q: Queryable,
  name: string,
  digest?: string,
  repository?: string,
  replica?: string,
): Promise<ProjectUsage & { heldBytes: number }> {
  // Each blob counts once however many repositories link it (its bytes are stored once); a
  // manifest once per repository that holds it (each holds its own copy: the same 4 MiB
  // manifest pushed to 40 repositories was counted once and stored 40 times; adversarial testing).
  const rows = await q.query<{ used: number; linked: boolean; manifest: boolean; held: number }>(
    `WITH repos AS (
       SELECT id FROM repositories WHERE ${inProject('name', '$1')}
     ), linked AS (
       SELECT DISTINCT rb.digest FROM repository_blobs rb WHERE rb.repository_id IN (SELECT id FROM repos)
     )
     SELECT (COALESCE((SELECT sum(b.size) FROM blobs b JOIN linked l ON l.digest = b.digest), 0)
           + COALESCE((SELECT sum(m.size) FROM manifests m WHERE m.repository_id IN (SELECT id FROM repos)), 0))::bigint AS used,
            EXISTS (SELECT 1 FROM linked WHERE digest = $2) AS linked,
            ${manifestIn('$3', '$2')} AS manifest,
            CASE WHEN $4::text IS NULL THEN 0 ELSE COALESCE((
              SELECT sum(h.bytes) FROM quota_holds h
              WHERE h.project = $1
                AND (h.replica = $4 OR ${counted('h')})
                AND NOT CASE WHEN h.kind = 'blob' THEN EXISTS (SELECT 1 FROM linked WHERE digest = h.digest)
                        ELSE ${manifestIn('h.repository', 'h.digest')} END
            ), 0) END::bigint AS held`,
    [name, digest ?? null, repository ?? null, replica ?? null],
  );
  const row = rows[0];
  return { usedBytes: row?.used ?? 0, linked: row?.linked ?? false, manifest: row?.manifest ?? false, heldBytes: row?.held ?? 0 };
}

export interface HoldRequest {
  /** The project's repository the content is linked into. */
  repository: string;
  digest: string;
  size: number;
  kind: 'blob' | 'manifest';
}

export type HoldAnswer =
  /** No quota, no such project, or content the project (for a manifest: the repository) holds. */
  { outcome: 'free' } | { outcome: 'held'; id: string } | { outcome: 'refused'; usedBytes: number; quotaBytes: number };

export interface QuotaStore {
  /** Holds `size` bytes against the quota of `project` if they fit, judged after every hold before. */
  hold(project: string, request: HoldRequest): Promise<HoldAnswer>;
  /** Removes a hold (its content linked, or its request failed); a missing one is not an error. */
  release(id: string): Promise<void>;
  /**
   * What counts against the project's quota now: its usage plus the holds every replica counts,
   * read without the lock (a bound on what may stream in; the hold at link time decides), and,
   * when `digest` is linked in it already (it would add nothing), that blob's size.
   */
  counted(project: string, digest: string): Promise<{ bytes: number; linkedSize?: number }>;
}

/** `replica`: this process's id in the heartbeat table (storage/replica-store.ts). */
export function createQuotaStore(db: Db, replica: string): QuotaStore {
  // Checks of one project wait for its row lock one after the other anyway: here they wait in this
  // process, so that all but one hold no database connection meanwhile. Forty checks of new
  // content at once (a flood of mounts) otherwise took every connection of the pool, each waiting
  // for the lock, and other projects' requests on this replica waited for a connection.
  const projectTurn = createKeyLock();
  return {
    async hold(project, { repository, digest, size, kind }) {
      // Content the project holds already adds nothing, and a project without a quota limits
      // nothing: said without the lock, so a flood of mounts of what a project has (cheap requests)
      // does not queue behind it, holding the pool's connections (adversarial testing: 5,000 at
      // once delayed other projects' requests on that replica by 13 s). Content removed after this
      // read is what a link then fails on, as it would after the locked read.
      const [before] = await db.query<{ quota_bytes: number | null; present: boolean }>(
        `SELECT p.quota_bytes,
                CASE WHEN $4 = 'blob'
                  THEN EXISTS (SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
                               WHERE rb.digest = $2 AND ${inProject('r.name', '$1')})
                  ELSE ${manifestIn('$3', '$2')} END AS present
         FROM projects p WHERE p.name = $1`,
        [project, digest, repository, kind],
      );
      if (!before || before.quota_bytes === null || before.present) return { outcome: 'free' };
      return projectTurn(project, () =>
        db.transaction(async (tx): Promise<HoldAnswer> => {
          // Nothing in a hold needs to survive a crash: a lost one was never linked.
          await tx.query("SELECT set_config('synchronous_commit', 'off', true)");
          const locked = await tx.query<{ quota_bytes: number | null }>(
            'SELECT quota_bytes FROM projects WHERE name = $1 FOR NO KEY UPDATE',
            [project],
          );
          const quotaBytes = locked[0]?.quota_bytes ?? null;
          if (quotaBytes === null) return { outcome: 'free' };
          // After the lock, so this statement's snapshot has every hold and link committed before it.
          const usage = await readUsage(tx, project, digest, repository, replica);
          if (kind === 'blob' ? usage.linked : usage.manifest) return { outcome: 'free' };
          const usedBytes = Number(usage.usedBytes) + Number(usage.heldBytes);
          if (usedBytes + size > Number(quotaBytes)) return { outcome: 'refused', usedBytes, quotaBytes: Number(quotaBytes) };
          await tx.query(
            `DELETE FROM quota_holds WHERE project = $1 AND replica <> $2
             AND NOT ${counted('quota_holds')}`,
            [project, replica],
          );
          const id = randomUUID();
          await tx.query(
            'INSERT INTO quota_holds (id, project, repository, digest, kind, bytes, replica) VALUES ($1, $2, $3, $4, $5, $6, $7)',
            [id, project, repository, digest, kind, size, replica],
          );
          return { outcome: 'held', id };
        }),
      );
    },
    async counted(project, digest) {
      const usage = await readUsage(db, project, digest, undefined, replica);
      const bytes = Number(usage.usedBytes) + Number(usage.heldBytes);
      if (!usage.linked) return { bytes };
      const [blob] = await db.query<{ size: number }>('SELECT size FROM blobs WHERE digest = $1', [digest]);
      return blob ? { bytes, linkedSize: Number(blob.size) } : { bytes };
    },
    async release(id) {
      await db.query("DELETE FROM quota_holds WHERE id = $1 AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL", [id]);
    },
  };
}
