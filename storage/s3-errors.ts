// What a failure of the S3 service, or of the way to it, means to the registry: storage unavailable
// (refused, reset, timed out, a server error, a missing bucket or refused credentials) or full.
// Also the bounded wait: a request on which no byte moves for the idle timeout fails, so an
// endpoint that accepts connections and never answers cannot hold a client's request open.
import http from 'node:http';
import https from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import { S3Error } from 'minio';
import type { BlobStore, PresignedGet } from './blob-store.js';
import { DependencyUnavailableError, StorageFullError, type AvailabilityListener } from './errors.js';

/** Socket errors: the endpoint cannot be reached, or the connection to it broke. */
const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection lost',
  EPIPE: 'connection lost',
  ECONNABORTED: 'connection lost',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'host unreachable',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
};

/** S3 error codes that say the service cannot serve, whatever was asked. */
const S3_REASONS: Record<string, string> = {
  NoSuchBucket: 'bucket missing',
  AccessDenied: 'access denied',
  InvalidAccessKeyId: 'access denied',
  SignatureDoesNotMatch: 'access denied',
  AuthorizationHeaderMalformed: 'access denied (wrong region?)',
  PermanentRedirect: 'wrong region or endpoint',
  MovedPermanently: 'wrong region or endpoint', // minio's name for a bodiless 301
  TemporaryRedirect: 'wrong region or endpoint',
  InternalError: 'server error',
  ServiceUnavailable: 'server error',
  SlowDown: 'server busy',
  XMinioServerNotInitialized: 'server starting',
};

/** S3 error codes for a full store (MinIO's drives, Ceph RGW's quotas). */
const FULL_CODES = new Set(['XMinioStorageFull', 'QuotaExceeded', 'XMinioAdminBucketQuotaExceeded']);

const MINIO_RETRIED_RE = /^Request failed after \d+ retries: Error: Retryable HTTP status: 5\d\d$/;

/** Thrown when no byte moved on a request to S3 for the idle timeout. */
class S3TimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`S3 did not answer within ${timeoutMs / 1000} s`);
    this.name = 'S3TimeoutError';
  }
}

/** The registry's reading of a failure of the S3 client; anything else is returned as it is. */
function classifyS3Error(err: unknown): unknown {
  if (err instanceof DependencyUnavailableError || err instanceof StorageFullError || !(err instanceof Error)) return err;
  if (err instanceof S3TimeoutError) return new DependencyUnavailableError('storage', 'timed out', { cause: err });
  // minio retries a 500, 502, 503 or 504 once and then throws a plain error saying so, without
  // the S3 error code (minio 8: internal/request.ts): only its message tells.
  if (MINIO_RETRIED_RE.test(err.message)) return new DependencyUnavailableError('storage', 'server error', { cause: err });
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return err;
  if (err instanceof S3Error && FULL_CODES.has(code)) return new StorageFullError('storage', undefined, { cause: err });
  const reason = err instanceof S3Error ? S3_REASONS[code] : NETWORK_REASONS[code];
  return reason === undefined ? err : new DependencyUnavailableError('storage', reason, { cause: err });
}

/**
 * http or https for the minio client, with every request failing once no byte moved on it for
 * `idleMs`: connecting, sending, waiting for the answer, reading it. (Node only reports an idle
 * socket; nothing ends the request unless told to.)
 */
export function idleTimeoutTransport(useSSL: boolean, idleMs: number): Pick<typeof http, 'request'> {
  const base = useSSL ? https : http;
  return {
    request: ((options: http.RequestOptions, callback?: (res: http.IncomingMessage) => void) => {
      const req = base.request(options, callback);
      req.setTimeout(idleMs, () => req.destroy(new S3TimeoutError(idleMs)));
      return req;
    }) as typeof http.request,
  };
}

/**
 * The object stream with its failures read as the registry's (a reset mid-object is storage
 * unavailable), reported to `report`. Destroying the returned stream destroys the source.
 */
function classifiedStream(source: Readable, report: AvailabilityListener): Readable {
  const out = new PassThrough({ highWaterMark: source.readableHighWaterMark });
  source.once('error', (err) => {
    const failure = classifyS3Error(err);
    if (failure instanceof DependencyUnavailableError) report('storage', failure);
    out.destroy(failure as Error);
  });
  out.once('close', () => source.destroy());
  source.pipe(out);
  return out;
}

/**
 * The store with every failure read as the registry's and every outcome reported: an operation
 * that answered, or the unavailability it met.
 */
export function guardStore(store: BlobStore & PresignedGet, report: AvailabilityListener): BlobStore & PresignedGet {
  async function call<T>(run: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    try {
      const result = await run();
      report('storage', undefined, startedAt);
      return result;
    } catch (err) {
      const failure = classifyS3Error(err);
      if (failure instanceof DependencyUnavailableError) report('storage', failure, startedAt);
      throw failure;
    }
  }
  async function* list(prefix: string): AsyncGenerator<string> {
    const keys = store.list(prefix)[Symbol.asyncIterator]();
    for (;;) {
      const next = await call(() => keys.next());
      if (next.done) return;
      yield next.value;
    }
  }
  return {
    stat: (key) => call(() => store.stat(key)),
    read: (key, options) => call(async () => classifiedStream(await store.read(key, options), report)),
    write: (key, body, options) => call(() => store.write(key, body, options)),
    move: (from, to) => call(() => store.move(from, to)),
    delete: (key) => call(() => store.delete(key)),
    list,
    presignedGetUrl: (key, expirySeconds) => call(() => store.presignedGetUrl(key, expirySeconds)),
  };
}
