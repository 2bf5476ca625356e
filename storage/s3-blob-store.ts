// Blob store on S3 or anything that speaks its API (MinIO, Ceph RGW, R2, …), through the `minio`
// client. Every key lives under an optional root directory inside the bucket, so several registries
// can share one bucket; nothing outside it is ever read, written, listed or removed.
//
// Writes stream: bytes are gathered into parts of `partSize` (at least 5 MiB, S3's minimum) and an
// object no larger than one part goes up as one PUT, a larger one as a multipart upload, one part
// in memory at a time. Either way S3 makes the object visible only when the PUT or the
// CompleteMultipartUpload succeeds, so it is complete or absent, and a failed or aborted write
// aborts its multipart upload and leaves any previous object at the key alone.
//
// minio's own putObject(stream) is not used for this: with an unknown size it resumes any
// unfinished multipart upload of the same key (another writer's, under concurrency), picks parts of
// ~550 MiB, never aborts the upload when the source fails (it waits for the source forever), and
// takes no AbortSignal. Its composeObject gives every part of one large source the same part
// number and reports a failed copy as success, so large moves use UploadPartCopy here as well.
import { addAbortSignal, type Readable } from 'node:stream';
import { Client, CopyDestinationOptions, CopySourceOptions, S3Error } from 'minio';
import type { BlobStore, ObjectStat, PresignedGet, ReadOptions } from './blob-store.js';
import { DependencyUnavailableError, InvalidStorageKeyError, StorageNotFoundError, type AvailabilityListener } from './errors.js';
import { guardStore, idleTimeoutTransport } from './s3-errors.js';
import { withConnectionRetries } from './s3-retries.js';
import { checkKey, isValidKey, parseEndpoint, PARTIAL_SEGMENT_RE, rootPrefix } from './s3-endpoint.js';

const MiB = 1024 * 1024;
/** S3's smallest part (every part but the last) and its largest single-request copy. */
export const S3_MIN_PART_SIZE = 5 * MiB;
const S3_MAX_COPY_SIZE = 5 * 1024 * MiB;

export interface S3BlobStoreOptions {
  bucket: string;
  /** Defaults to us-east-1; always sent, so the client never has to ask the server. */
  region?: string;
  /**
   * The S3 endpoint: `https://host[:port]`, `http://host[:port]` or `host[:port]` (then `secure`
   * picks the scheme). Without it, AWS S3 itself.
   */
  regionEndpoint?: string;
  /** HTTPS when the endpoint names no scheme. Default true. */
  secure?: boolean;
  /** Path-style URLs (`host/bucket/key`). Default: true for a custom endpoint, false for AWS. */
  forcePathStyle?: boolean;
  /** Without both keys requests go unsigned (a public bucket). */
  accessKey?: string;
  secretKey?: string;
  /** Key prefix inside the bucket, like the Go registry's `rootdirectory` (slashes trimmed). */
  rootDirectory?: string;
  /** Create the bucket when it does not exist (otherwise its absence is an error). */
  createBucket?: boolean;
  /** Bytes per uploaded part, so per write in memory; at least 5 MiB. Default 10 MiB. */
  partSize?: number;
  /** Objects larger than this are moved with UploadPartCopy. Default 5 GiB (S3's copy limit). */
  multipartCopyThreshold?: number;
  /** Bytes per UploadPartCopy part; at least 5 MiB, at most 5 GiB. Default 1 GiB. */
  multipartCopyPartSize?: number;
  /** A request on which no byte moves for this long fails as storage unavailable. Default 30 s. */
  idleTimeoutMs?: number;
  /** Told after each operation whether S3 answered. */
  onAvailability?: AvailabilityListener;
}

export type S3BlobStore = BlobStore & PresignedGet;

function s3Code(err: unknown): string | undefined {
  return err instanceof S3Error ? err.code : undefined;
}

/** NoSuchKey from GET, NotFound from HEAD (which has no body to say more). */
function isNotFound(err: unknown): boolean {
  const code = s3Code(err);
  return code === 'NoSuchKey' || code === 'NotFound';
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), {
    name: 'AbortError',
    code: 'ABORT_ERR',
  });
}

function checkPartSize(name: string, value: number, max = S3_MAX_COPY_SIZE): number {
  if (!Number.isInteger(value) || value < S3_MIN_PART_SIZE || value > max) {
    throw new Error(`${name} must be an integer from ${S3_MIN_PART_SIZE} to ${max} bytes`);
  }
  return value;
}

export function createS3BlobStore(options: S3BlobStoreOptions): S3BlobStore {
  const { bucket } = options;
  const region = options.region ?? 'us-east-1';
  const root = rootPrefix(options.rootDirectory);
  const partSize = checkPartSize('partSize', options.partSize ?? 10 * MiB);
  const copyThreshold = options.multipartCopyThreshold ?? S3_MAX_COPY_SIZE;
  const copyPartSize = checkPartSize('multipartCopyPartSize', options.multipartCopyPartSize ?? 1024 * MiB);
  const endpoint = parseEndpoint(options.regionEndpoint, options.secure);
  const client = withConnectionRetries(
    new Client({
      endPoint: endpoint.endPoint,
      ...(endpoint.port !== undefined ? { port: endpoint.port } : {}),
      useSSL: endpoint.useSSL,
      transport: idleTimeoutTransport(endpoint.useSSL, options.idleTimeoutMs ?? 30_000),
      region,
      pathStyle: options.forcePathStyle ?? endpoint.custom,
      ...(options.accessKey && options.secretKey ? { accessKey: options.accessKey, secretKey: options.secretKey } : {}),
    }),
  );

  /** The object name of a key; throws (so the async caller rejects) for a malformed key. */
  function objectName(key: string): string {
    checkKey(key);
    return `${root}${key}`;
  }

  // Checked once, before the first request: a missing bucket would otherwise look like a store
  // that simply holds nothing (HEAD of an object in a missing bucket is a bare 404).
  let bucketChecked: Promise<void> | undefined;
  function ready(): Promise<void> {
    bucketChecked ??= ensureBucket().catch((err: unknown) => {
      bucketChecked = undefined;
      throw err;
    });
    return bucketChecked;
  }

  async function ensureBucket(): Promise<void> {
    if (await client.bucketExists(bucket)) return;
    if (!options.createBucket) {
      const cause = new Error(
        `S3 bucket ${JSON.stringify(bucket)} does not exist (create it, or set REGISTRY_STORAGE_S3_CREATEBUCKET=true)`,
      );
      throw new DependencyUnavailableError('storage', 'bucket missing', { cause });
    }
    try {
      await client.makeBucket(bucket, region);
    } catch (err) {
      // Another replica created it first.
      const code = s3Code(err);
      if (code !== 'BucketAlreadyOwnedByYou' && code !== 'BucketAlreadyExists') throw err;
      if (!(await client.bucketExists(bucket))) throw err;
    }
  }

  async function statName(name: string): Promise<ObjectStat | undefined> {
    try {
      const s = await client.statObject(bucket, name);
      return { size: s.size, modified: s.lastModified };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Streams `body` to `name`; returns its size once the object is visible. */
  async function upload(name: string, body: Readable, signal: AbortSignal | undefined): Promise<number> {
    if (signal) addAbortSignal(signal, body);
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let size = 0;
    let uploadId: string | undefined;
    const parts: Array<{ part: number; etag: string }> = [];

    async function sendPart(): Promise<void> {
      uploadId ??= await client.initiateNewMultipartUpload(bucket, name, {});
      const payload = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      const part = parts.length + 1;
      const { etag } = await client.uploadPart(
        { bucketName: bucket, objectName: name, uploadID: uploadId, partNumber: part, headers: {} },
        payload,
      );
      parts.push({ part, etag });
    }

    try {
      for await (const data of body as AsyncIterable<Buffer | string>) {
        const piece = typeof data === 'string' ? Buffer.from(data) : data;
        pending.push(piece);
        pendingBytes += piece.length;
        size += piece.length;
        if (pendingBytes >= partSize) await sendPart();
      }
      if (signal?.aborted) throw abortError(signal);
      if (uploadId === undefined) {
        await client.putObject(bucket, name, Buffer.concat(pending, pendingBytes), size);
      } else {
        if (pendingBytes > 0) await sendPart();
        if (signal?.aborted) throw abortError(signal);
        await client.completeMultipartUpload(bucket, name, uploadId, parts);
      }
      return size;
    } catch (err) {
      body.destroy();
      // Abandoned parts are invisible but billed until the upload is aborted.
      if (uploadId !== undefined) await client.abortMultipartUpload(bucket, name, uploadId).catch(() => undefined);
      throw err;
    }
  }

  /** Server-side copy of a large object in parts (CopyObject stops at 5 GiB). */
  async function copyInParts(from: string, to: string, size: number): Promise<void> {
    const uploadId = await client.initiateNewMultipartUpload(bucket, to, {});
    try {
      const parts: Array<{ part: number; etag: string }> = [];
      for (let start = 0; start < size; start += copyPartSize) {
        const part = parts.length + 1;
        const end = Math.min(start + copyPartSize, size) - 1;
        const { etag } = await client.uploadPart({
          bucketName: bucket,
          objectName: to,
          uploadID: uploadId,
          partNumber: part,
          headers: { 'x-amz-copy-source': `/${bucket}/${from}`, 'x-amz-copy-source-range': `bytes=${start}-${end}` },
        });
        parts.push({ part, etag });
      }
      await client.completeMultipartUpload(bucket, to, uploadId, parts);
    } catch (err) {
      await client.abortMultipartUpload(bucket, to, uploadId).catch(() => undefined);
      throw err;
    }
  }

  const store: S3BlobStore = {
    async stat(key) {
      const name = objectName(key);
      await ready();
      return statName(name);
    },

    async read(key: string, options: ReadOptions = {}): Promise<Readable> {
      const name = objectName(key);
      const { signal } = options;
      await ready();
      if (signal?.aborted) throw abortError(signal);
      const start = options.start ?? 0;
      if (options.end !== undefined && options.end < start) throw new RangeError(`range end ${options.end} is before start ${start}`);
      // getPartialObject reads to the end for length 0.
      const length = options.end === undefined ? 0 : options.end - start + 1;
      let stream: Readable;
      try {
        stream = await client.getPartialObject(bucket, name, start, length);
      } catch (err) {
        if (isNotFound(err)) throw new StorageNotFoundError(key);
        throw err;
      }
      if (signal) addAbortSignal(signal, stream);
      return stream;
    },

    async write(key, body, options = {}) {
      let name: string;
      try {
        name = objectName(key);
        await ready();
      } catch (err) {
        // Nobody else will consume the body: let its producer see the failure.
        body.destroy();
        throw err;
      }
      const size = await upload(name, body, options.signal);
      // S3 answers a PUT without the object's time; the local clock at completion is close enough.
      return { size, modified: new Date() };
    },

    async move(from, to) {
      const source = objectName(from);
      const target = objectName(to);
      await ready();
      const stat = await statName(source);
      if (!stat) throw new StorageNotFoundError(from);
      if (source === target) return;
      try {
        if (stat.size > copyThreshold) await copyInParts(source, target, stat.size);
        else {
          await client.copyObject(
            new CopySourceOptions({ Bucket: bucket, Object: source }),
            new CopyDestinationOptions({ Bucket: bucket, Object: target }),
          );
        }
      } catch (err) {
        if (isNotFound(err)) throw new StorageNotFoundError(from);
        throw err;
      }
      await client.removeObject(bucket, source);
    },

    async delete(key) {
      const name = objectName(key);
      await ready();
      // S3 answers 204 for a missing object as well.
      await client.removeObject(bucket, name);
    },

    async *list(prefix) {
      const slash = prefix.lastIndexOf('/');
      if (slash >= 0) checkKey(prefix.slice(0, slash));
      if (!PARTIAL_SEGMENT_RE.test(prefix.slice(slash + 1))) throw new InvalidStorageKeyError(prefix);
      await ready();
      const items = client.listObjectsV2(bucket, `${root}${prefix}`, true) as AsyncIterable<{ name?: string }>;
      for await (const item of items) {
        if (item.name === undefined || !item.name.startsWith(root)) continue;
        const key = item.name.slice(root.length);
        // An object someone else put under the root with a name no key can have is not ours.
        if (isValidKey(key)) yield key;
      }
    },

    async presignedGetUrl(key, expirySeconds) {
      const name = objectName(key);
      return client.presignedGetObject(bucket, name, expirySeconds);
    },
  };
  return guardStore(store, options.onAvailability ?? (() => undefined));
}
