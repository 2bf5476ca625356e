// OCI error codes, each registered once with its HTTP status (as distribution's errcode/register.go
// does), the error type handlers throw, and the one mapping from domain errors to OCI errors.
import type { SignatureFormatError } from '../sigstore/payload.js';
import type { PullRefusedError } from '../sigstore/pull-gate.js';
import type { SignatureRefusedError } from '../sigstore/signatures.js';
import type { TokenRefusedError } from '../auth/tokens.js';
import type { UpstreamError, UpstreamUnavailableError } from '../mirror/upstream.js';
import {
  DomainError,
  type Dependency,
  type DependencyUnavailableError,
  type DescriptorDigestError,
  type DigestMismatchError,
  type InvalidStorageKeyError,
  type ManifestInvalidError,
  type ManifestReferenceError,
  type StillReferencedError,
  type SizeMismatchError,
  type StorageFullError,
  type StorageNotFoundError,
  type UploadEndedError,
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
  // GitLab's container registry (a distribution fork with a database) answers a DELETE of a
  // manifest an index lists with this code and status; zot refuses it too.
  MANIFEST_REFERENCED: { status: 409, message: 'manifest referenced by a manifest list' },
  BLOB_REFERENCED: { status: 409, message: 'blob referenced by a manifest' },
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

  // A spec's code answered with another status: registered here under a name of their own, so
  // that no handler picks a status. `code` is what clients see.
  // The distribution spec: a manifest over the registry's limit is 413 (clients read the status).
  MANIFEST_TOO_LARGE: { code: 'SIZE_INVALID', status: 413, message: 'manifest too large' },
  SIGNATURE_TOO_LARGE: { code: 'SIGNATURE_INVALID', status: 413, message: 'signature too large' },
  // A conditional request (If-Match) whose condition no longer holds: RFC 9110's 412.
  PRECONDITION_FAILED: { code: 'CONFLICT', status: 412, message: 'the precondition does not hold' },
  BODY_TOO_LARGE: { code: 'REQUEST_INVALID', status: 413, message: 'request body too large' },
  // Refusals of Node's HTTP parser (server/listen.ts), in the registry's error shape.
  HEADERS_TOO_LARGE: { code: 'REQUEST_INVALID', status: 431, message: 'request header fields too large' },
  REQUEST_TIMEOUT: { code: 'REQUEST_INVALID', status: 408, message: 'request timeout' },
} as const satisfies Record<string, { status: number; message: string; code?: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** For a 401 in token mode: what the Bearer challenge says (the scope needed, RFC 6750's error). */
export interface ChallengeHint {
  scope?: string;
  error?: 'invalid_token' | 'insufficient_scope';
  /** The token service's own 401: it takes Basic credentials. */
  basic?: boolean;
}

export class OciError extends Error {
  /** The code clients see in the body. */
  readonly code: string;
  readonly status: number;
  constructor(
    /** The entry of ERROR_CODES, which gives the status. */
    readonly kind: ErrorCode,
    message?: string,
    readonly detail?: unknown,
    /** 401s: what the challenge names. */
    readonly challenge?: ChallengeHint,
  ) {
    const entry: { status: number; message: string; code?: string } = ERROR_CODES[kind];
    super(message ?? entry.message);
    this.name = 'OciError';
    this.code = entry.code ?? kind;
    this.status = entry.status;
  }
}

export function ociErrorBody(err: OciError): string {
  const entry: { code: string; message: string; detail?: unknown } = { code: err.code, message: err.message };
  if (err.detail !== undefined) entry.detail = err.detail;
  return JSON.stringify({ errors: [entry] });
}

/** Every domain error a request can raise; toOciError answers each. */
type KnownDomainError =
  | StorageNotFoundError
  | UploadEndedError
  | InvalidStorageKeyError
  | DigestMismatchError
  | SizeMismatchError
  | ManifestReferenceError
  | StillReferencedError
  | ManifestInvalidError
  | DescriptorDigestError
  | DependencyUnavailableError
  | StorageFullError
  | SignatureFormatError
  | SignatureRefusedError
  | PullRefusedError
  | TokenRefusedError
  | UpstreamError
  | UpstreamUnavailableError;

/** Maps any thrown value to the OCI error a client sees. `undefined` means an internal error. */
export function toOciError(err: unknown): OciError | undefined {
  if (err instanceof OciError) return err;
  if (err instanceof DomainError) return fromDomainError(err as KnownDomainError);
  return undefined;
}

function fromDomainError(err: KnownDomainError): OciError | undefined {
  switch (err.kind) {
    case 'digest-mismatch':
      return new OciError('DIGEST_INVALID', err.message, { expected: err.expected, actual: err.actual });
    case 'size-mismatch':
      return new OciError('SIZE_INVALID', err.message, { expected: err.expected, actual: err.actual });
    case 'manifest-invalid':
      return new OciError('MANIFEST_INVALID', err.message, err.detail);
    case 'descriptor-digest':
      return new OciError('DIGEST_INVALID', err.message, { digest: err.digest });
    case 'signature-format':
      return new OciError('SIGNATURE_INVALID', err.message);
    case 'signature-refused':
      return new OciError('DENIED', err.message);
    case 'pull-refused':
      return new OciError('PROJECTPOLICYVIOLATION', err.message, { keyIds: err.keyIds, problems: err.problems });
    case 'manifest-reference':
      // containers/image and docker push the blobs again on MANIFEST_BLOB_UNKNOWN and retry.
      return err.stored === undefined
        ? new OciError('MANIFEST_BLOB_UNKNOWN', err.message, { digest: err.reference.digest })
        : new OciError('MANIFEST_INVALID', err.message, { digest: err.reference.digest });
    case 'storage-not-found':
      return new OciError('BLOB_UNKNOWN', 'blob data is missing from storage');
    case 'upload-ended':
      return new OciError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry: another request ended it', { uploadId: err.uploadId });
    case 'invalid-storage-key':
      // Keys come from validated names, so this is a request no check before storage caught: refused.
      return new OciError('REQUEST_INVALID', 'the request names no valid storage object');
    case 'dependency-unavailable':
      return new OciError(
        'UNAVAILABLE',
        `the registry's ${DEPENDENCY_NAMES[err.dependency]} is unavailable (${err.reason}); try again later`,
        {
          dependency: err.dependency,
          reason: err.reason,
        },
      );
    case 'storage-full':
      return storageFull(err);
    case 'upstream-unavailable':
      return new OciError('UNAVAILABLE', `${err.message}, and this registry holds no copy; try again later`, { upstream: err.upstream });
    case 'upstream-failed':
      return new OciError('UPSTREAM_FAILED', err.message, { upstream: err.upstream });
    case 'still-referenced':
      return new OciError(err.what === 'manifest' ? 'MANIFEST_REFERENCED' : 'BLOB_REFERENCED', err.message, {
        digest: err.digest,
        referencedBy: err.by,
      });
    case 'token-refused':
      return new OciError('UNAUTHORIZED', err.message, undefined, { basic: true });
    default: {
      // A compile error here means a domain error without its OCI answer; at run time, a
      // subclass missing from KnownDomainError is an internal error.
      const unanswered: never = err;
      void unanswered;
      return undefined;
    }
  }
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
