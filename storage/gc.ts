// Online mark-and-sweep garbage collection, safe while the registry serves pushes and pulls.
//
// What goes: blobs no manifest in any repository references (with their repository links),
// optionally untagged manifests nothing refers to (with their signatures), upload sessions
// untouched for longer than the purge age, blob files no database row knows, and crash debris:
// upload objects no session holds and temporary files, once older than any request still using
// them could be (the debris age) and not in use by this process.
// What stays: anything created or linked within the grace window (default 2 hours, as Harbor),
// so layers pushed ahead of their manifest survive. Every deletion re-checks its condition under
// the digest's lock (storage/locks.ts), which linking a blob and saving a manifest take too (or,
// on the embedded database, exclude by holding back every other statement): a push racing
// the collection either completes first (and its blob is kept) or finds the blob gone and fails
// cleanly (MANIFEST_BLOB_UNKNOWN; the client pushes the layer again). Several collectors (replicas)
// may run at once: each deletion is idempotent.
import { hasLocalDebris, type BlobStore } from './blob-store.js';
import type { Blobs } from './blobs.js';
import type { ChangeBus } from './change-bus.js';
import type { Db } from './db.js';
import { parseDigest } from './digest.js';
import { BLOBS_TREE, digestOfBlobKey, UPLOADS_TREE, uploadIdOfKey } from './paths.js';
import { lockedTransaction } from './locks.js';

export interface GcOptions {
  /** Anything newer than this is kept. */
  graceMs: number;
  /** Upload sessions idle longer than this are removed. */
  uploadAgeMs: number;
  /**
   * Crash debris untouched for longer than this is removed: upload objects that no session holds
   * and temporary files. Longer than any live request can leave them untouched.
   */
  debrisAgeMs: number;
  deleteUntagged: boolean;
  dryRun: boolean;
  onProgress?: (progress: GcProgress) => void;
  signal?: AbortSignal;
}

export interface GcProgress {
  phase: 'manifests' | 'blobs' | 'uploads' | 'orphans';
  done: number;
  total: number;
}

export interface GcReport {
  dryRun: boolean;
  manifestsRemoved: number;
  blobsRemoved: number;
  bytesRemoved: number;
  uploadsRemoved: number;
  orphanFilesRemoved: number;
  durationMs: number;
}

export interface GarbageCollector {
  run(options: GcOptions): Promise<GcReport>;
  /** Only the crash debris (what a restart looks for): cheap, and safe while serving. */
  removeDebris(options: Pick<GcOptions, 'debrisAgeMs' | 'dryRun' | 'signal'>): Promise<GcReport>;
}

const UNREFERENCED = `
  b.created_at < $1
  AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child_digest = b.digest AND r.child_kind = 'blob')
  AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest AND rb.linked_at >= $1)`;

// An untagged manifest is garbage when no index in its repository lists it and it is not a
// referrer (signature, SBOM, ...) of a manifest that still exists.
const UNTAGGED = `
  m.pushed_at < $1
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references r
                  WHERE r.repository_id = m.repository_id AND r.child_digest = m.digest AND r.child_kind = 'manifest')
  AND (m.subject_digest IS NULL OR NOT EXISTS (
         SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest))`;

export interface GarbageCollectorDeps {
  db: Db;
  store: BlobStore;
  blobs: Blobs;
  bus?: ChangeBus;
}

export function createGarbageCollector(deps: GarbageCollectorDeps): GarbageCollector {
  const { db, store, blobs } = deps;

  async function sweepManifests(cutoff: Date, options: GcOptions, report: GcReport): Promise<void> {
    // Removing an index can orphan its platform manifests: repeat until nothing more goes.
    for (let round = 0; round < 16; round++) {
      const candidates = await db.query<{ repository_id: number; name: string; digest: string }>(
        `SELECT m.repository_id, r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE ${UNTAGGED} ORDER BY m.repository_id, m.digest`,
        [cutoff],
      );
      if (candidates.length === 0 || options.dryRun) {
        if (options.dryRun) report.manifestsRemoved = candidates.length;
        return;
      }
      let removed = 0;
      for (const [i, m] of candidates.entries()) {
        options.signal?.throwIfAborted();
        const gone = await lockedTransaction(db, `manifest:${m.repository_id}:${m.digest}`, async (tx) => {
          const rows = await tx.query(
            `DELETE FROM manifests m WHERE m.repository_id = $2 AND m.digest = $3 AND ${UNTAGGED} RETURNING digest`,
            [cutoff, m.repository_id, m.digest],
          );
          return rows.length > 0;
        });
        if (gone) {
          removed += 1;
          deps.bus?.publish({ repository: m.name });
        }
        options.onProgress?.({ phase: 'manifests', done: i + 1, total: candidates.length });
      }
      report.manifestsRemoved += removed;
      if (removed === 0) return;
    }
  }

  async function sweepBlobs(cutoff: Date, options: GcOptions, report: GcReport): Promise<void> {
    const candidates = await db.query<{ digest: string; size: number }>(
      `SELECT b.digest, b.size FROM blobs b WHERE ${UNREFERENCED} ORDER BY b.digest`,
      [cutoff],
    );
    for (const [i, candidate] of candidates.entries()) {
      options.signal?.throwIfAborted();
      if (options.dryRun) {
        report.blobsRemoved += 1;
        report.bytesRemoved += candidate.size;
      } else {
        const repositories = await lockedTransaction(db, candidate.digest, async (tx) => {
          const still = await tx.query(`SELECT 1 FROM blobs b WHERE b.digest = $2 AND ${UNREFERENCED} FOR UPDATE`, [
            cutoff,
            candidate.digest,
          ]);
          if (still.length === 0) return undefined;
          const unlinked = await tx.query<{ name: string }>(
            `DELETE FROM repository_blobs rb USING repositories r
             WHERE rb.digest = $1 AND r.id = rb.repository_id RETURNING r.name`,
            [candidate.digest],
          );
          await tx.query('DELETE FROM blobs WHERE digest = $1', [candidate.digest]);
          return unlinked.map((r) => r.name);
        });
        if (repositories) {
          await removeBytes(candidate.digest);
          report.blobsRemoved += 1;
          report.bytesRemoved += candidate.size;
          for (const repository of new Set(repositories)) deps.bus?.publish({ repository });
        }
      }
      options.onProgress?.({ phase: 'blobs', done: i + 1, total: candidates.length });
    }
  }

  /**
   * The bytes of a blob whose rows are gone, once that is committed: deleted inside the
   * transaction, a commit that then failed (a failover, the connection lost, the process killed
   * before COMMIT) brought the rows back without the file, and clients were told the blob exists
   * (HEAD 200, manifests accepted) while every GET of it failed; nothing repaired that (adversarial
   * testing). Now the worst case is a file no row knows, which the orphan sweep removes. Under the
   * digest's lock again, and only while no row has come back: a push of the same digest meanwhile
   * placed the bytes anew and linked them under that lock (blobs.save).
   */
  async function removeBytes(digest: string): Promise<void> {
    const parsed = parseDigest(digest);
    if (!parsed) return;
    await lockedTransaction(db, digest, async (tx) => {
      const back = await tx.query('SELECT 1 FROM blobs WHERE digest = $1', [digest]);
      if (back.length === 0) await blobs.delete(parsed);
    });
  }

  async function sweepUploads(options: GcOptions, report: GcReport): Promise<void> {
    const cutoff = new Date(Date.now() - options.uploadAgeMs);
    const stale = await db.query<{ id: string }>('SELECT id FROM uploads WHERE updated_at < $1 ORDER BY id', [cutoff]);
    for (const [i, upload] of stale.entries()) {
      options.signal?.throwIfAborted();
      // A chunk streaming into it right now (a slow one, the first in a week) keeps it: here, by
      // this process's writes; on another replica, by the session's use, which each PATCH and PUT
      // marks as it starts (so the age is checked again as the session goes).
      if (blobs.inUse(upload.id)) continue;
      if (!options.dryRun) {
        const gone = await db.query('DELETE FROM uploads WHERE id = $1 AND updated_at < $2 RETURNING id', [upload.id, cutoff]);
        if (gone.length === 0) continue;
        await blobs.removeUpload(upload.id);
      }
      report.uploadsRemoved += 1;
      options.onProgress?.({ phase: 'uploads', done: i + 1, total: stale.length });
    }
  }

  async function sweepDebris(options: Pick<GcOptions, 'debrisAgeMs' | 'dryRun' | 'signal'>, report: GcReport): Promise<void> {
    const cutoff = new Date(Date.now() - options.debrisAgeMs);
    await sweepUploadObjects(cutoff, options, report);
    if (hasLocalDebris(store)) {
      // Temporary files of writes a crash cut off: files nothing knows, like orphan blob files.
      const debris = await store.removeDebris(cutoff, { dryRun: options.dryRun });
      report.orphanFilesRemoved += debris.files;
      report.bytesRemoved += debris.bytes;
    }
  }

  /** Every upload object in storage, by upload id. */
  async function uploadObjects(): Promise<Map<string, string[]>> {
    const keysById = new Map<string, string[]>();
    for await (const key of store.list(`${UPLOADS_TREE}/`)) {
      const id = uploadIdOfKey(key);
      if (id === undefined) continue;
      const keys = keysById.get(id);
      if (keys) keys.push(key);
      else keysById.set(id, [key]);
    }
    return keysById;
  }

  /** The chunk objects each of these sessions holds (listed after the objects, so a chunk recorded meanwhile counts). */
  async function recordedChunks(ids: string[]): Promise<Map<string, Set<string>>> {
    const held = new Map<string, Set<string>>();
    if (ids.length === 0) return held;
    const rows = await db.query<{ id: string; storage_key: string | null }>(
      'SELECT u.id, c.storage_key FROM uploads u LEFT JOIN upload_chunks c ON c.upload_id = u.id WHERE u.id = ANY($1::uuid[])',
      [ids],
    );
    for (const row of rows) {
      const keys = held.get(row.id) ?? new Set<string>();
      if (row.storage_key !== null) keys.add(row.storage_key);
      held.set(row.id, keys);
    }
    return held;
  }

  /**
   * Upload objects no session holds, once older than the cutoff: all objects of an upload whose
   * session is gone (a crash after a commit linked the blob, or during a monolithic upload, which
   * has no session), and, of a live session, objects it never recorded (the final body of a PUT a
   * crash cut off, a chunk that lost a race). An upload this process is writing or committing is
   * left alone whatever its age; another replica's keeps its objects younger than the cutoff.
   */
  async function sweepUploadObjects(cutoff: Date, options: Pick<GcOptions, 'dryRun' | 'signal'>, report: GcReport): Promise<void> {
    const keysById = await uploadObjects();
    const sessions = await recordedChunks([...keysById.keys()]);
    for (const [id, keys] of keysById) {
      options.signal?.throwIfAborted();
      if (blobs.inUse(id)) continue;
      const recorded = sessions.get(id);
      const loose = recorded ? keys.filter((key) => !recorded.has(key)) : keys;
      if (loose.length === 0) continue;
      const stats = await Promise.all(loose.map((key) => store.stat(key)));
      const bytes = stats.reduce((sum, stat) => sum + (stat?.size ?? 0), 0);
      if (!recorded) {
        // All or nothing: one young object means a commit may still be joining the others.
        if (stats.some((stat) => stat && stat.modified >= cutoff)) continue;
        if (!options.dryRun) await blobs.removeUpload(id);
        report.uploadsRemoved += 1;
        report.bytesRemoved += bytes;
        continue;
      }
      for (const [i, key] of loose.entries()) {
        const stat = stats[i];
        if (!stat || stat.modified >= cutoff) continue;
        if (!options.dryRun) await store.delete(key);
        report.orphanFilesRemoved += 1;
        report.bytesRemoved += stat.size;
      }
    }
  }

  /** Blob files without a row: left by a crash between writing the bytes and committing the link. */
  async function sweepOrphans(cutoff: Date, options: GcOptions, report: GcReport): Promise<void> {
    const files: { key: string; digest: string }[] = [];
    for await (const key of store.list(BLOBS_TREE)) {
      const digest = digestOfBlobKey(key);
      if (digest) files.push({ key, digest });
    }
    for (let start = 0; start < files.length; start += 500) {
      const batch = files.slice(start, start + 500);
      const known = new Set(
        (await db.query<{ digest: string }>('SELECT digest FROM blobs WHERE digest = ANY($1::text[])', [batch.map((f) => f.digest)])).map(
          (r) => r.digest,
        ),
      );
      for (const [i, file] of batch.entries()) {
        options.signal?.throwIfAborted();
        options.onProgress?.({ phase: 'orphans', done: start + i + 1, total: files.length });
        if (known.has(file.digest)) continue;
        const stat = await store.stat(file.key);
        if (!stat || stat.modified >= cutoff) continue;
        if (options.dryRun) {
          report.orphanFilesRemoved += 1;
          report.bytesRemoved += stat.size;
          continue;
        }
        const removed = await lockedTransaction(db, file.digest, async (tx) => {
          if ((await tx.query('SELECT 1 FROM blobs WHERE digest = $1', [file.digest])).length > 0) return false;
          await store.delete(file.key);
          return true;
        });
        if (removed) {
          report.orphanFilesRemoved += 1;
          report.bytesRemoved += stat.size;
        }
      }
    }
  }

  const emptyReport = (dryRun: boolean): GcReport => ({
    dryRun,
    manifestsRemoved: 0,
    blobsRemoved: 0,
    bytesRemoved: 0,
    uploadsRemoved: 0,
    orphanFilesRemoved: 0,
    durationMs: 0,
  });

  return {
    async run(options) {
      const started = Date.now();
      const cutoff = new Date(started - options.graceMs);
      const report = emptyReport(options.dryRun);
      if (options.deleteUntagged) await sweepManifests(cutoff, options, report);
      await sweepBlobs(cutoff, options, report);
      await sweepUploads(options, report);
      await sweepDebris(options, report);
      await sweepOrphans(cutoff, options, report);
      report.durationMs = Date.now() - started;
      return report;
    },

    async removeDebris(options) {
      const started = Date.now();
      const report = emptyReport(options.dryRun);
      await sweepDebris(options, report);
      report.durationMs = Date.now() - started;
      return report;
    },
  };
}
