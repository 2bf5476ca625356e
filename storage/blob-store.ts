// The storage seam: the few operations that both a filesystem and an object store do natively.
// Every implementation runs the one conformance suite in test/conformance/blob-store.ts.
import type { Readable } from 'node:stream';

export interface ObjectStat {
  size: number;
  modified: Date;
}

export interface ReadOptions {
  /** First byte, inclusive. */
  start?: number;
  /** Last byte, inclusive. */
  end?: number;
  signal?: AbortSignal;
}

export interface BlobStore {
  /** `undefined` when the object does not exist. */
  stat(key: string): Promise<ObjectStat | undefined>;
  /** Throws StorageNotFoundError when the object does not exist. */
  read(key: string, options?: ReadOptions): Promise<Readable>;
  /** Writes the whole stream; the object appears atomically, complete, or not at all. */
  write(key: string, body: Readable, options?: { signal?: AbortSignal }): Promise<ObjectStat>;
  /** Renames an object, replacing any object at `to`. Throws StorageNotFoundError. */
  move(from: string, to: string): Promise<void>;
  /** Removes an object; removing a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** Every key starting with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<string>;
}

/** Signed GET URLs: what an object store (S3) can offer beyond the seam. */
export interface PresignedGet {
  /** A URL that fetches the object without credentials until it expires. */
  presignedGetUrl(key: string, expirySeconds: number): Promise<string>;
}

export function hasPresignedGet(store: BlobStore): store is BlobStore & PresignedGet {
  return typeof (store as Partial<PresignedGet>).presignedGetUrl === 'function';
}

/** An open object that reads into the caller's buffer at any position. */
export interface ObjectReader {
  readonly size: number;
  /** Fills `buffer` from `position` on; fewer bytes only at the end of the object (0 past it). */
  read(buffer: Buffer, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Positional reads into the caller's buffers: what a file offers beyond the seam. A sender can
 * then reuse two buffers for a whole blob instead of allocating one per chunk as a stream does;
 * on a 1 GiB pull those allocations made the registry spend three times the CPU of the copy itself
 * in garbage collection.
 */
export interface PositionalReads {
  /** Throws StorageNotFoundError when the object does not exist. */
  openReader(key: string): Promise<ObjectReader>;
}

export function hasPositionalReads(store: BlobStore): store is BlobStore & PositionalReads {
  return typeof (store as Partial<PositionalReads>).openReader === 'function';
}

/**
 * Writing on at the end of an existing object, in place: what a file offers beyond the seam. An
 * upload's chunks can then grow one object, which becomes the blob by a rename, where separate
 * chunk objects must be copied into one at the end (on a 256 MiB push in 8 MiB PATCHes that copy
 * was 40% of the push). The Go registry's filesystem driver appends the same way. While an append
 * runs the object is not atomic: only bytes below `at` may be read meanwhile.
 */
export interface InPlaceAppends {
  /**
   * Writes `body` into the object from byte `at` on, durable when it resolves. `undefined`, with
   * the body left unread, when the object is missing or is not exactly `at` bytes long. Bytes a
   * failed append left behind are for the caller to cut off (`truncate`).
   */
  append(key: string, at: number, body: Readable, options?: { signal?: AbortSignal }): Promise<ObjectStat | undefined>;
  /** Cuts the object back to `size` bytes; a missing object is not an error. */
  truncate(key: string, size: number): Promise<void>;
}

export function hasInPlaceAppends(store: BlobStore): store is BlobStore & InPlaceAppends {
  const candidate = store as Partial<InPlaceAppends>;
  return typeof candidate.append === 'function' && typeof candidate.truncate === 'function';
}

/** What a removal of local debris found (and removed, unless it was a dry run). */
export interface DebrisReport {
  files: number;
  bytes: number;
  directories: number;
}

/**
 * Leftovers only a local filesystem has: the temporary file of a write that a crash cut off, and
 * directories emptied by a crash or by earlier versions (one per upload). Garbage collection
 * removes them; an object store has neither.
 */
export interface LocalDebris {
  /**
   * Removes temporary files (never those of this process's writes in progress) and empty upload
   * directories last changed before `olderThan`.
   */
  removeDebris(olderThan: Date, options?: { dryRun?: boolean }): Promise<DebrisReport>;
}

export function hasLocalDebris(store: BlobStore): store is BlobStore & LocalDebris {
  return typeof (store as Partial<LocalDebris>).removeDebris === 'function';
}
