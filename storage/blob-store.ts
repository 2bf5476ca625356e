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
