// The content-addressed layer over a BlobStore: blobs are stored under their digest, uploads are
// kept as one object per chunk and verified against the client's digest before the blob becomes
// visible under its key.
//
// Hashing happens while a chunk streams in. Node cannot serialise a hash state, so the running
// sha256 of an upload lives in this process only; when a commit finds no complete running hash
// (another replica took some chunks, the server restarted, or the client asked for sha512) the
// chunks are read back once and hashed while they are joined.
import { createHash, type Hash } from 'node:crypto';
import { finished, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LRUCache } from 'lru-cache';
import { hasPositionalReads, hasPresignedGet, type BlobStore, type ObjectReader, type ObjectStat, type ReadOptions } from './blob-store.js';
import type { ParsedDigest } from './digest.js';
import { DigestMismatchError, SizeMismatchError } from './errors.js';
import { blobKey, HEALTH_PROBE_KEY, uploadAssemblyKey, uploadChunkKey, uploadListPrefix } from './paths.js';

export interface UploadChunk {
  offset: number;
  size: number;
  key: string;
}

export interface CommitOptions {
  expectedSize?: number;
  link?: (place: () => Promise<void>) => Promise<void>;
}

export interface CommittedBlob {
  digest: string;
  size: number;
}

export interface Blobs {
  stat(digest: ParsedDigest): Promise<ObjectStat | undefined>;
  open(digest: ParsedDigest, options?: ReadOptions): Promise<Readable>;
  /**
   * A positional reader of the blob where the store offers one (files), else undefined: the
   * caller then streams with `open`. Throws StorageNotFoundError for a missing blob.
   */
  openReader(digest: ParsedDigest): Promise<ObjectReader | undefined>;
  /** Whether the store can hand clients a URL to fetch a blob from directly (S3). */
  readonly presigns: boolean;
  /** A URL valid for `expirySeconds` to fetch the blob from the store; only when `presigns`. */
  presignedUrl(digest: ParsedDigest, expirySeconds: number): Promise<string>;
  /** Resolves when the storage answers (bucket and permissions included), reading nothing. */
  probe(): Promise<void>;
  /**
   * Streams one chunk of an upload into its own object (none for an empty body: size 0). Should
   * the store fail, `body` is left as it is, neither read to its end nor destroyed. `onHashed` is
   * told the sha256 of the upload so far as soon as the body's last byte was hashed, before the
   * chunk is durable (a first chunk, or one following the running hash; else it is not called).
   */
  writeChunk(
    uploadId: string,
    offset: number,
    body: Readable,
    signal?: AbortSignal,
    onHashed?: (sha256: string) => void,
  ): Promise<UploadChunk>;
  /** Removes a chunk that lost the race to be recorded. */
  discardChunk(uploadId: string, chunk: UploadChunk): Promise<void>;
  /**
   * Joins the chunks, verifies digest (and size when given) and makes the blob visible. `link`
   * runs the final placement inside the caller's critical section (the metadata transaction that
   * links the blob), so garbage collection cannot delete the bytes between placing and linking.
   */
  commit(uploadId: string, chunks: UploadChunk[], expected: ParsedDigest, options?: CommitOptions): Promise<CommittedBlob>;
  /** Removes every object of an upload. */
  removeUpload(uploadId: string): Promise<void>;
  /**
   * Whether this process is writing a chunk of the upload or committing it right now: its objects
   * are in use, whatever their age (garbage collection leaves them alone).
   */
  inUse(uploadId: string): boolean;
  delete(digest: ParsedDigest): Promise<void>;
}

interface RunningHash {
  end: number;
  hash: Hash;
  /** The chunk objects hashed, in order: the hash vouches for these and no others. */
  keys: string[];
}

export function createBlobs(store: BlobStore): Blobs {
  // Bounded: an abandoned upload only costs a slot until it is evicted.
  const running = new LRUCache<string, RunningHash>({ max: 4096 });
  /** Chunk writes and commits under way in this process, by upload. */
  const busy = new Map<string, number>();

  async function using<T>(uploadId: string, work: () => Promise<T>): Promise<T> {
    busy.set(uploadId, (busy.get(uploadId) ?? 0) + 1);
    try {
      return await work();
    } finally {
      const left = (busy.get(uploadId) ?? 1) - 1;
      if (left > 0) busy.set(uploadId, left);
      else busy.delete(uploadId);
    }
  }

  function chunksInOrder(chunks: UploadChunk[]): Readable {
    async function* join(): AsyncGenerator<Buffer> {
      for (const chunk of chunks) {
        for await (const data of await store.read(chunk.key)) yield data as Buffer;
      }
    }
    return Readable.from(join(), { objectMode: false });
  }

  async function hashChunks(algorithm: ParsedDigest['algorithm'], chunks: UploadChunk[]): Promise<string> {
    const hash = createHash(algorithm);
    for await (const data of chunksInOrder(chunks)) hash.update(data as Buffer);
    return `${algorithm}:${hash.digest('hex')}`;
  }

  /** The upload's size; its chunks must follow each other without a gap. */
  function contiguousSize(uploadId: string, chunks: UploadChunk[]): number {
    let total = 0;
    for (const chunk of chunks) {
      if (chunk.offset !== total) throw new Error(`upload ${uploadId} has a gap at ${total}`);
      total += chunk.size;
    }
    return total;
  }

  function requireDigest(expected: ParsedDigest, actual: string): void {
    if (actual !== expected.digest) throw new DigestMismatchError(expected.digest, actual);
  }

  /**
   * Verifies the digest where no joined copy is needed: from the running hash, when it hashed
   * exactly these chunk objects (a rival chunk written at the same offset, not yet discarded, must
   * not vouch for the recorded one), or by reading back a single chunk. False when neither applies.
   */
  async function verifyCheaply(uploadId: string, chunks: UploadChunk[], expected: ParsedDigest, total: number): Promise<boolean> {
    const state = running.get(uploadId);
    const hashed =
      state !== undefined &&
      state.end === total &&
      state.keys.length === chunks.length &&
      state.keys.every((key, i) => key === chunks[i]!.key);
    if (expected.algorithm === 'sha256' && (hashed || total === 0)) {
      requireDigest(expected, `sha256:${(hashed ? state.hash : createHash('sha256')).copy().digest('hex')}`);
      return true;
    }
    if (chunks.length <= 1) {
      requireDigest(expected, await hashChunks(expected.algorithm, chunks));
      return true;
    }
    return false;
  }

  /** Joins the chunks into one private object, hashing them on the way; removed if they do not match. */
  async function stageJoined(uploadId: string, chunks: UploadChunk[], expected: ParsedDigest): Promise<string> {
    const staged = uploadAssemblyKey(uploadId);
    const hash = createHash(expected.algorithm);
    const hasher = new Transform({
      transform(data: Buffer, _encoding, done) {
        hash.update(data);
        done(null, data);
      },
    });
    const feeding = pipeline(chunksInOrder(chunks), hasher).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err : new Error('reading the chunks failed', { cause: err })),
    );
    await store.write(staged, hasher);
    const feedError = await feeding;
    if (feedError) throw feedError;
    const actual = `${expected.algorithm}:${hash.digest('hex')}`;
    if (actual !== expected.digest) {
      await store.delete(staged);
      throw new DigestMismatchError(expected.digest, actual);
    }
    return staged;
  }

  async function removeUpload(uploadId: string): Promise<void> {
    running.delete(uploadId);
    const keys: string[] = [];
    for await (const key of store.list(uploadListPrefix(uploadId))) keys.push(key);
    await Promise.all(keys.map((key) => store.delete(key)));
  }

  const blobs: Omit<Blobs, 'inUse'> = {
    stat: (digest) => store.stat(blobKey(digest)),

    open: (digest, options) => store.read(blobKey(digest), options),

    openReader: async (digest) => (hasPositionalReads(store) ? store.openReader(blobKey(digest)) : undefined),

    presigns: hasPresignedGet(store),

    async presignedUrl(digest, expirySeconds) {
      if (!hasPresignedGet(store)) throw new Error('this blob store cannot presign URLs');
      return store.presignedGetUrl(blobKey(digest), expirySeconds);
    },

    async probe() {
      await store.stat(HEALTH_PROBE_KEY);
    },

    async writeChunk(uploadId, offset, body, signal, onHashed) {
      const prior = running.get(uploadId);
      let hash: Hash | undefined;
      let hashedKeys: string[] = [];
      if (offset === 0) hash = createHash('sha256');
      else if (prior && prior.end === offset) {
        hash = prior.hash.copy();
        hashedKeys = prior.keys;
      }
      let size = 0;
      const counter = new Transform({
        transform(data: Buffer, _encoding, done) {
          size += data.length;
          hash?.update(data);
          done(null, data);
        },
        flush(done) {
          if (hash && onHashed) onHashed(`sha256:${hash.copy().digest('hex')}`);
          done();
        },
      });
      const key = uploadChunkKey(uploadId, offset);
      // The body feeds the counter through pipe(), not pipeline(): should the store fail (a full
      // disk, S3 gone), the body is left to the caller undestroyed, since destroying an HTTP request
      // resets its connection before its sender could read why. A failure of the body itself (an
      // abort, a premature end) fails the write.
      let feedError: Error | undefined;
      const stopWatching = finished(body, { writable: false }, (err) => {
        if (!err) return;
        feedError = err;
        counter.destroy(err);
      });
      // Its failures reach us through store.write; a late one (a write after the store gave up)
      // must not go unhandled.
      counter.on('error', () => undefined);
      body.pipe(counter);
      let written: ObjectStat;
      try {
        written = await store.write(key, counter, { signal });
      } finally {
        stopWatching();
        body.unpipe(counter);
      }
      if (feedError) {
        await store.delete(key);
        throw feedError;
      }
      if (written.size !== size) {
        await store.delete(key);
        throw new SizeMismatchError(size, written.size);
      }
      if (size === 0) {
        await store.delete(key);
        return { offset, size, key };
      }
      if (hash) running.set(uploadId, { end: offset + size, hash, keys: [...hashedKeys, key] });
      return { offset, size, key };
    },

    async discardChunk(uploadId, chunk) {
      // The running hash may include this chunk's bytes: forget it, commit will re-read.
      running.delete(uploadId);
      await store.delete(chunk.key);
    },

    async commit(uploadId, chunks, expected, options = {}) {
      const total = contiguousSize(uploadId, chunks);
      if (options.expectedSize !== undefined && options.expectedSize !== total) throw new SizeMismatchError(options.expectedSize, total);
      const target = blobKey(expected);
      const verified = await verifyCheaply(uploadId, chunks, expected, total);
      // A single chunk is verified by now. For several, an existing blob spares joining them, but
      // only once they are verified. (Not asked for one chunk: a system call fewer per blob.)
      const existsNow = chunks.length > 1 && (await store.stat(target)) !== undefined;
      // Never link an existing blob on the strength of a claimed digest alone.
      if (!verified && existsNow) requireDigest(expected, await hashChunks(expected.algorithm, chunks));
      // Stage the verified bytes under a private key; placing them is a rename.
      let staged: string | undefined = chunks.length === 1 ? chunks[0]!.key : undefined;
      if (chunks.length > 1 && !existsNow) staged = await stageJoined(uploadId, chunks, expected);
      const place = async (): Promise<void> => {
        if (await store.stat(target)) return;
        if (chunks.length === 0) await store.write(target, Readable.from([], { objectMode: false }));
        else if (staged) await store.move(staged, target);
        // Existed when we looked, gone now (collected meanwhile): join the verified chunks again.
        else await store.write(target, chunksInOrder(chunks));
      };
      await (options.link ? options.link(place) : place());
      await removeUpload(uploadId);
      return { digest: expected.digest, size: total };
    },

    removeUpload,

    delete: (digest) => store.delete(blobKey(digest)),
  };

  return {
    ...blobs,
    writeChunk: (uploadId, offset, body, signal, onHashed) =>
      using(uploadId, () => blobs.writeChunk(uploadId, offset, body, signal, onHashed)),
    commit: (uploadId, chunks, expected, options) => using(uploadId, () => blobs.commit(uploadId, chunks, expected, options)),
    inUse: (uploadId) => busy.has(uploadId),
  };
}
