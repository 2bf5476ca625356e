// OCI error codes, each registered once with its HTTP status (as distribution's errcode/register.go
// does), the error type handlers throw, and the one mapping from storage errors to OCI errors.
import { UpstreamError, UpstreamUnavailableError } from '../mirror/upstream.js';
import { SignatureFormatError } from '../sigstore/payload.js';
import { PullRefusedError } from '../sigstore/pull-gate.js';
import { SignatureRefusedError } from '../sigstore/signatures.js';
import {
  DependencyUnavailableError,
  DescriptorDigestError,
  DigestMismatchError,
  InvalidStorageKeyError,
  ManifestInvalidError,
  MissingBlobsError,
  SizeMismatchError,
  StorageFullError,
  StorageNotFoundError,
  UploadNotFoundError,
  UploadOffsetError,
  type Dependency,
} from '../storage/errors.js';

export const ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a blob unknown to the repository' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  RANGE_INVALID: { status: 416, message: 'invalid content range' },
  TAG_INVALID: { status: 400, message: 'invalid tag' },
  PAGINATION_NUMBER_INVALID: { status: 400, message: 'invalid number of results requested' },
  QUERY_PARAMETER_INVALID: { status: 400, message: 'invalid query parameter value' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  NOT_FOUND: { status: 404, message: 'no such endpoint' },
  REQUEST_INVALID: { status: 400, message: 'invalid request body' },
  SIGNATURE_INVALID: { status: 400, message: 'invalid signature' },
  SIGNATURE_EXISTS: { status: 409, message: 'signature already exists' },
  // Harbor's code for a pull refused by project policy, so tooling that knows Harbor recognises it.
  PROJECTPOLICYVIOLATION: { status: 412, message: 'the image does not satisfy the project signing policy' },
  CONFLICT: { status: 409, message: 'conflicts with the current state' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // distribution's code for a registry that cannot serve now; the message names the dependency.
  UNAVAILABLE: { status: 503, message: 'service unavailable' },
  // 507 Insufficient Storage (RFC 4918): the server cannot store what was sent, until someone
  // frees space. containers/image does not retry it (c/common retries 502-504 only); docker
  // retries any 5xx a few times. Neither reads a 5xx body, so the status line says it.
  STORAGE_FULL: { status: 507, message: 'insufficient storage' },
  // A mirror project's upstream answered, but not as a registry must (refused credentials, a
  // manifest that does not parse, bytes that do not match their digest): 502 Bad Gateway.
  UPSTREAM_FAILED: { status: 502, message: 'the upstream registry failed' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class OciError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    /** Only where a spec names a status other than the code's own (413 for oversized manifests). */
    status?: number,
  ) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'OciError';
    this.status = status ?? ERROR_CODES[code].status;
  }
}

export function ociErrorBody(err: OciError): string {
  const entry: { code: string; message: string; detail?: unknown } = { code: err.code, message: err.message };
  if (err.detail !== undefined) entry.detail = err.detail;
  return JSON.stringify({ errors: [entry] });
}

/** Maps any thrown value to the OCI error a client sees. `undefined` means an internal error. */
export function toOciError(err: unknown): OciError | undefined {
  if (err instanceof OciError) return err;
  if (err instanceof DigestMismatchError) {
    return new OciError('DIGEST_INVALID', err.message, { expected: err.expected, actual: err.actual });
  }
  if (err instanceof SizeMismatchError) {
    return new OciError('SIZE_INVALID', err.message, { expected: err.expected, actual: err.actual });
  }
  if (err instanceof UploadOffsetError) {
    return new OciError('RANGE_INVALID', err.message, { expected: err.expected, actual: err.actual });
  }
  if (err instanceof ManifestInvalidError) return new OciError('MANIFEST_INVALID', err.message, err.detail);
  if (err instanceof DescriptorDigestError) return new OciError('DIGEST_INVALID', err.message, { digest: err.digest });
  if (err instanceof SignatureFormatError) return new OciError('SIGNATURE_INVALID', err.message);
  if (err instanceof SignatureRefusedError) return new OciError('DENIED', err.message);
  if (err instanceof PullRefusedError) {
    return new OciError('PROJECTPOLICYVIOLATION', err.message, { keyIds: err.keyIds, problems: err.problems });
  }
  if (err instanceof MissingBlobsError) {
    return new OciError('MANIFEST_BLOB_UNKNOWN', 'a referenced blob was removed meanwhile; push it again', { digests: err.digests });
  }
  if (err instanceof UploadNotFoundError) return new OciError('BLOB_UPLOAD_UNKNOWN', err.message);
  if (err instanceof StorageNotFoundError) return new OciError('BLOB_UNKNOWN', 'blob data is missing from storage');
  // Keys come from validated names, so this is a request no check before storage caught: refused.
  if (err instanceof InvalidStorageKeyError) return new OciError('REQUEST_INVALID', 'the request names no valid storage object');
  if (err instanceof DependencyUnavailableError) {
    return new OciError('UNAVAILABLE', `the registry's ${DEPENDENCY_NAMES[err.dependency]} is unavailable (${err.reason}); try again later`, {
      dependency: err.dependency,
      reason: err.reason,
    });
  }
  if (err instanceof StorageFullError) return storageFull(err);
  if (err instanceof UpstreamUnavailableError) {
    return new OciError('UNAVAILABLE', `${err.message}, and this registry holds no copy; try again later`, { upstream: err.upstream });
  }
  if (err instanceof UpstreamError) return new OciError('UPSTREAM_FAILED', err.message, { upstream: err.upstream });
  return undefined;
}

const DEPENDENCY_NAMES: Record<Dependency, string> = { database: 'database', storage: 'blob storage' };

function storageFull(err: StorageFullError): OciError {
  const what =
    err.dependency === 'database'
      ? "the registry's database has no space left"
      : `the registry's blob storage has no space left for ${err.requested === undefined ? "this request's data" : `the ${err.requested} bytes of this request`}`;
  return new OciError('STORAGE_FULL', `${what}; an administrator must free space before it can be stored`, {
    dependency: err.dependency,
    ...(err.requested === undefined ? {} : { requested: err.requested }),
  });
}
