// The content-addressed layer over a BlobStore: blobs are stored under their digest, uploads are
// kept as chunk objects and verified against the client's digest before the blob becomes visible
// under its key.
//
// Where the store can append in place (files), a chunk that follows the previous one recorded by
// this process is written onto the end of that chunk's object, so a chunked upload usually ends as
// one object that becomes the blob by a rename; elsewhere, or when the upload changed hands, each
// chunk is an object of its own and the commit copies them into one. A chunk's bytes sit in its
// object at its offset less the offset of the first chunk that object holds.
//
// Hashing happens while a chunk streams in. Node cannot serialise a hash state, so the running
// sha256 of an upload lives in this process only; when a commit finds no complete running hash
// (another replica took some chunks, the server restarted, or the client asked for sha512) the
// chunks are read back once and hashed while they are joined.
import { createHash, type Hash } from 'node:crypto';
import { finished, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createLru } from './lru.js';
import { noteBodyBytes } from './scavenge.js';
import {
  hasInPlaceAppends,
  hasPositionalReads,
  hasPresignedGet,
  type BlobStore,
  type ObjectReader,
  type ObjectStat,
  type ReadOptions,
} from './blob-store.js';
import type { ParsedDigest } from './digest.js';
import { DigestMismatchError, SizeMismatchError } from './errors.js';
import { blobKey, HEALTH_PROBE_KEY, uploadAssemblyKey, uploadChunkKey, uploadListPrefix } from './paths.js';

export interface UploadChunk {
  offset: number;
  size: number;
  key: string;
  /**
   * Written onto the end of an earlier chunk's object, from this byte of it on (not recorded by
   * the metadata store: discardChunk cuts the object back to it).
   */
  appendedAt?: number;
}

export interface WriteChunkOptions {
  signal?: AbortSignal;
  /**
   * Told the sha256 of the upload so far as soon as the body's last byte was hashed, before the
   * chunk is durable (a first chunk, or one following the running hash; else it is not called).
   */
  onHashed?: (sha256: string) => void;
  /**
   * The most bytes the chunk may have: past them the write fails with `error()`, nothing of it is
   * kept, and the body is left unread beyond that point (a quota, server/quota.ts).
   */
  limit?: { bytes: number; error: () => Error };
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
   * Streams one chunk of an upload into its own object, or onto the end of the previous chunk's
   * object where the store appends and that chunk was recorded (none for an empty body: size 0). Should
   * the store fail, `body` is left as it is, neither read to its end nor destroyed.
   */
  writeChunk(uploadId: string, offset: number, body: Readable, options?: WriteChunkOptions): Promise<UploadChunk>;
  /**
   * The chunk was recorded (the metadata store took it at its offset): the next chunk may be
   * appended to its object. Until then, a chunk written meanwhile gets an object of its own.
   */
  chunkRecorded(uploadId: string, chunk: UploadChunk): void;
  /** Removes a chunk that lost the race to be recorded (an appended one: cuts its bytes off). */
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
  /** The offset of the first chunk in the last object of `keys` (its byte 0). */
  base: number;
  /** The last chunk was recorded (chunkRecorded): the next one may be appended to its object. */
  recorded: boolean;
}

export function createBlobs(store: BlobStore): Blobs {
  // Bounded: an abandoned upload only costs a slot until it is evicted.
  const running = createLru<string, RunningHash>(4096);
  const appends = hasInPlaceAppends(store) ? store : undefined;
  /** Chunk writes and commits under way in this process, by upload. */
  const busy = new Map<string, number>();
  /** Chunk writes alone. */
  const writing = new Map<string, number>();

  async function using<T>(uploadId: string, work: () => Promise<T>, counts = busy): Promise<T> {
    counts.set(uploadId, (counts.get(uploadId) ?? 0) + 1);
    try {
      return await work();
    } finally {
      const left = (counts.get(uploadId) ?? 1) - 1;
      if (left > 0) counts.set(uploadId, left);
      else counts.delete(uploadId);
    }
  }

  function chunksInOrder(chunks: UploadChunk[]): Readable {
    async function* join(): AsyncGenerator<Buffer> {
      const bases = new Map<string, number>();
      for (const chunk of chunks) {
        if (chunk.size === 0) continue;
        if (!bases.has(chunk.key)) bases.set(chunk.key, chunk.offset);
        // Only the chunk's own range: a failed or rival append may have left bytes after it.
        const start = chunk.offset - bases.get(chunk.key)!;
        for await (const data of await store.read(chunk.key, { start, end: start + chunk.size - 1 })) yield data as Buffer;
      }
    }
    return Readable.from(join(), { objectMode: false });
  }

  /**
   * The object that already is the blob: every chunk in one object, which holds nothing else (bytes
   * a cut-off append left would otherwise become part of the blob). Undefined when a join is needed.
   */
  async function wholeObject(chunks: UploadChunk[], total: number): Promise<string | undefined> {
    const key = chunks[0]?.key;
    if (key === undefined || chunks.some((chunk) => chunk.key !== key)) return undefined;
    // Only an appending store can hold more than its one chunk: elsewhere this costs no request.
    if (appends && (await store.stat(key))?.size !== total) return undefined;
    return key;
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
   * Verifies the digest from the running hash, when it hashed exactly these chunks (a rival chunk
   * written at the same offset, not yet discarded, must not vouch for the recorded one). False when
   * it did not: the bytes are read back.
   */
  function verifyByRunningHash(uploadId: string, chunks: UploadChunk[], expected: ParsedDigest, total: number): boolean {
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
    return false;
  }

  /**
   * Joins the chunks into one private object, hashing them on the way unless they are `verified`
   * already; removed if they do not match. (Hashing 256 MiB again cost ~180 ms here.)
   */
  async function stageJoined(uploadId: string, chunks: UploadChunk[], expected: ParsedDigest, verified: boolean): Promise<string> {
    const staged = uploadAssemblyKey(uploadId);
    if (verified) {
      await store.write(staged, chunksInOrder(chunks));
      return staged;
    }
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

    async writeChunk(uploadId, offset, body, { signal, onHashed, limit } = {}) {
      const prior = running.get(uploadId);
      let hash: Hash | undefined;
      let hashedKeys: string[] = [];
      if (offset === 0) hash = createHash('sha256');
      else if (prior && prior.end === offset) {
        hash = prior.hash.copy();
        hashedKeys = prior.keys;
      }
      // Onto the end of the previous chunk's object: only after that chunk was recorded, and with no
      // other write of this upload under way here (another replica never has this running hash, so
      // it writes objects of its own). A rival that wins the race at this offset leaves these bytes
      // unread, since chunks are read at their own offsets.
      const onto =
        appends && hash && prior && offset !== 0 && prior.recorded && busy.get(uploadId) === 1
          ? { key: prior.keys.at(-1)!, at: offset - prior.base, base: prior.base }
          : undefined;
      let size = 0;
      const counter = new Transform({
        transform(data: Buffer, _encoding, done) {
          size += data.length;
          if (limit && size > limit.bytes) {
            done(limit.error());
            return;
          }
          hash?.update(data);
          noteBodyBytes(data.length);
          done(null, data);
        },
        flush(done) {
          if (hash && onHashed) onHashed(`sha256:${hash.copy().digest('hex')}`);
          done();
        },
      });
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
      let key = onto?.key ?? uploadChunkKey(uploadId, offset);
      let start = 0;
      let written: ObjectStat | undefined;
      /** Writing onto the previous chunk's object (not a new object after a refused append). */
      const inPlace = (): boolean => onto !== undefined && key === onto.key;
      /** Removes what this write stored: its own object, or the bytes it appended. */
      const undo = (): Promise<void> => (inPlace() ? appends!.truncate(key, onto!.at) : store.delete(key));
      try {
        if (onto) {
          // The previous append or write failed half-way and left its bytes (undefined): a new object.
          written = await appends!.append(onto.key, onto.at, counter, { signal });
          if (written) start = onto.at;
          else key = uploadChunkKey(uploadId, offset);
        }
        written ??= await store.write(key, counter, { signal });
      } catch (err) {
        // A write of its own object removes its temporary file itself; an append leaves its bytes.
        if (inPlace()) await undo().catch(() => undefined);
        throw err;
      } finally {
        stopWatching();
        body.unpipe(counter);
      }
      if (feedError) {
        await undo();
        throw feedError;
      }
      if (written.size - start !== size) {
        await undo();
        throw new SizeMismatchError(size, written.size - start);
      }
      const appended = start > 0;
      if (size === 0) {
        if (!appended) await store.delete(key);
        return { offset, size, key };
      }
      if (hash) {
        running.set(uploadId, {
          end: offset + size,
          hash,
          keys: [...hashedKeys, key],
          base: appended ? onto!.base : offset,
          recorded: false,
        });
      }
      return appended ? { offset, size, key, appendedAt: start } : { offset, size, key };
    },

    chunkRecorded(uploadId, chunk) {
      const state = running.get(uploadId);
      if (state && state.end === chunk.offset + chunk.size && state.keys.at(-1) === chunk.key) state.recorded = true;
    },

    async discardChunk(uploadId, chunk) {
      // The running hash may include this chunk's bytes: forget it, commit will re-read.
      running.delete(uploadId);
      if (chunk.appendedAt === undefined) await store.delete(chunk.key);
      // The object holds recorded chunks too: only this chunk's bytes go. No append can follow it
      // meanwhile (its running hash was never marked recorded, and now is gone).
      else await appends?.truncate(chunk.key, chunk.appendedAt);
    },

    async commit(uploadId, chunks, expected, options = {}) {
      const total = contiguousSize(uploadId, chunks);
      if (options.expectedSize !== undefined && options.expectedSize !== total) throw new SizeMismatchError(options.expectedSize, total);
      const target = blobKey(expected);
      const verified = verifyByRunningHash(uploadId, chunks, expected, total);
      // Chunks that already are one object are renamed: no copy. Otherwise an existing blob spares
      // joining them. Either way (and for no chunks at all) they are verified first: never link an
      // existing blob on the strength of a claimed digest alone.
      // Renamed only when no write can be appending to that very object, or its late bytes would
      // land in the published blob, which would no longer hash to its digest (and hold bytes no
      // quota counts): where the store appends in place, only the process that wrote the chunks
      // (its running hash vouches for them: writeChunk appends only at the end that hash reached,
      // and only in the process holding it) with no chunk write of the upload running now (it
      // chose to append before this commit began; none chooses to while one runs). A commit on
      // another replica than the one that wrote the chunks joins them into a copy: it reads and
      // hashes them all anyway (a PATCH appending on one replica while the PUT renamed on another
      // corrupted the blob; adversarial testing).
      const mayBeAppendedTo = appends !== undefined && (!verified || writing.has(uploadId));
      const whole = mayBeAppendedTo ? undefined : await wholeObject(chunks, total);
      const existsNow = whole === undefined && chunks.length > 0 && (await store.stat(target)) !== undefined;
      const joins = whole === undefined && chunks.length > 0 && !existsNow;
      if (!verified && !joins) requireDigest(expected, await hashChunks(expected.algorithm, chunks));
      // The joined copy is verified while it is made (unless it is already); placing it is a rename.
      const staged = joins ? await stageJoined(uploadId, chunks, expected, verified) : whole;
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
    writeChunk: (uploadId, offset, body, options) =>
      using(uploadId, () => using(uploadId, () => blobs.writeChunk(uploadId, offset, body, options), writing)),
    commit: (uploadId, chunks, expected, options) => using(uploadId, () => blobs.commit(uploadId, chunks, expected, options)),
    inUse: (uploadId) => busy.has(uploadId),
  };
}
