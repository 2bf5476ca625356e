// What storage/db.ts and the embedded database process (storage/pglite-process.ts) say to each
// other over the IPC channel.

/** Parent → child. */
export type PgliteRequest = { id: number; sql: string; params?: unknown[] } | { close: true };

/** Child → parent. */
export type PgliteReply =
  { ready: true } | { id: number; rows: Record<string, unknown>[] } | { id: number; error: SerializedDbError } | { fatal: string };

/** What PostgreSQL says about a failed statement (pg's DatabaseError fields), as plain data. */
export interface SerializedDbError {
  message: string;
  fields: Record<string, string>;
}

/** The file naming the process that has a data directory open; two would corrupt it. */
export const LOCK_FILE = 'signet.pid';
