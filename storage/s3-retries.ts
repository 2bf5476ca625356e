// Retries of S3 calls that failed before reaching S3.
import type { Client } from 'minio';

// Calls that may simply be sent again: their bodies are buffers, and repeating them changes
// nothing. (Not completeMultipartUpload: a lost answer to a completed upload would turn into
// NoSuchUpload on the retry.)
const RETRYABLE = new Set([
  'bucketExists',
  'statObject',
  'getPartialObject',
  'putObject',
  'uploadPart',
  'copyObject',
  'removeObject',
  'abortMultipartUpload',
  'initiateNewMultipartUpload',
]);

/** A keep-alive connection the server closed just as it was reused: nothing reached S3. */
function isConnectionReset(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  return e?.code === 'ECONNRESET' || e?.code === 'EPIPE' || e?.message === 'socket hang up';
}

/**
 * The minio client retries a 5xx answer once by itself, but not an HTTP keep-alive race (the
 * server closing an idle connection as the client reuses it), which fails a request that never
 * reached S3. Retry those, twice.
 */
export function withConnectionRetries(raw: Client): Client {
  return new Proxy(raw, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function' || !RETRYABLE.has(String(property))) return value;
      const method = value as (...args: unknown[]) => Promise<unknown>;
      return async (...args: unknown[]): Promise<unknown> => {
        for (let attempt = 0; ; attempt++) {
          try {
            return await method.apply(target, args);
          } catch (err) {
            if (attempt >= 2 || !isConnectionReset(err)) throw err;
          }
        }
      };
    },
  });
}
