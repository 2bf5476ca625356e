// What storage/db.ts and the embedded database's worker thread (storage/pglite-worker.ts) say to
// each other.

/** Registry → worker. */
export type PgliteRequest = { id: number; sql: string; params?: unknown[] } | { id: number; heapSpaces: true } | { close: true };

/** Worker → registry. */
export type PgliteReply =
  | { ready: true }
  | { closed: true }
  | { id: number; rows: Record<string, unknown>[] }
  | { id: number; heapSpaces: HeapSpace[] }
  | { id: number; error: SerializedDbError }
  | { fatal: string };

/** What PostgreSQL says about a failed statement (pg's DatabaseError fields), as plain data. */
export interface SerializedDbError {
  message: string;
  fields: Record<string, string>;
}

/** The file naming the process that has a data directory open; two would corrupt it. */
export const LOCK_FILE = 'signet.pid';

/** One space of the database worker's JavaScript heap (node:v8's getHeapSpaceStatistics, in bytes). */
export interface HeapSpace {
  name: string;
  /** Memory the space holds from the system. */
  size: number;
  /** What its objects, live or dead, take of it. */
  used: number;
}
