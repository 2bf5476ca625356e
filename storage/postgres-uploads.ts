// The uploads of MetadataStore in SQL: sessions and their chunks.
import type { Queryable } from './db.js';
import type { MetadataStore, UploadRecord } from './metadata-store.js';

/**
 * A FROM item that makes the statement's own transaction (autocommit: the statement) commit without
 * waiting for its WAL to reach the disk (`synchronous_commit` off for that transaction only,
 * PostgreSQL's set_config with is_local). For an upload session's bookkeeping: a crash may lose
 * the last such commits, which only makes the client start its upload again (the Go registry
 * writes its `_uploads` state without an fsync at all); the next durable commit (a blob linked,
 * a manifest stored) flushes them along with its own, as the WAL is written in order.
 */
const UNFLUSHED_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS unflushed_commit";

export function createPostgresUploads(db: Queryable): MetadataStore['uploads'] {
  return {
    async create(id, repository) {
      await db.query(`INSERT INTO uploads (id, repository) SELECT $1, $2 FROM ${UNFLUSHED_COMMIT}`, [id, repository]);
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
          `WITH claimed AS (UPDATE uploads SET updated_at = now() FROM ${UNFLUSHED_COMMIT}
                            WHERE id = $1 AND repository = $2 RETURNING id, repository, size, created_at)
           SELECT t.id, t.repository, t.size, t.created_at, c.start_offset, c.size AS chunk_size, c.storage_key
           FROM claimed t LEFT JOIN upload_chunks c ON c.upload_id = t.id ORDER BY c.start_offset`,
          [id, repository],
        ),
      );
    },
    async remove(id) {
      return (await db.query('DELETE FROM uploads WHERE id = $1 RETURNING id', [id])).length > 0;
    },
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
