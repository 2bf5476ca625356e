// Errors raised by the storage layer. They never mention HTTP: server/errors.ts maps them to OCI
// error codes with one exhaustive switch over their `kind`.

/**
 * The file system's errors in words a person can act on: the start-up checks and management
 * commands (server/failures.ts) and the filesystem store's refusals say them alike.
 */
export const FILE_SYSTEM_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'does not exist',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EIO: 'an I/O error',
};

/** Whether `err` is a system call's failure with this errno code (ENOENT, EINVAL, ...). */
export function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === code;
}

/**
 * An error a request's input or the state of a dependency explains, as opposed to a bug: each
 * subclass names its `kind`, and server/errors.ts gives every kind its OCI error. The domain
 * errors of sigstore/ extend it too.
 */
export abstract class DomainError extends Error {
  abstract readonly kind: string;
}

export class StorageNotFoundError extends DomainError {
  readonly kind = 'storage-not-found';
  constructor(readonly key: string) {
    super(`storage object not found: ${key}`);
    this.name = 'StorageNotFoundError';
  }
}

/** An upload session another request ended first (finished it, or cancelled it): nothing was linked. */
export class UploadEndedError extends DomainError {
  readonly kind = 'upload-ended';
  constructor(readonly uploadId: string) {
    super(`upload ${uploadId} was ended by another request`);
    this.name = 'UploadEndedError';
  }
}

/**
 * A key that no object can have: one that could leave the store's root, or is malformed. Keys are
 * built only from validated digests and upload ids (storage/paths.ts), so this is a refusal of
 * the request that led to it, never of the store.
 */
export class InvalidStorageKeyError extends DomainError {
  readonly kind = 'invalid-storage-key';
  constructor(readonly key: string) {
    super(`invalid storage key ${JSON.stringify(key)}`);
    this.name = 'InvalidStorageKeyError';
  }
}

export class DigestMismatchError extends DomainError {
  readonly kind = 'digest-mismatch';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`content digest ${actual} does not match ${expected}`);
    this.name = 'DigestMismatchError';
  }
}

export class SizeMismatchError extends DomainError {
  readonly kind = 'size-mismatch';
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`content size ${actual} does not match ${expected}`);
    this.name = 'SizeMismatchError';
  }
}

/**
 * A manifest names content its repository does not hold (`stored` undefined), or holds at another
 * size than its descriptor says. Checked in the statement that saves the manifest, so a blob
 * unlinked or collected while the manifest was pushed is caught as well.
 */
export class ManifestReferenceError extends DomainError {
  readonly kind = 'manifest-reference';
  constructor(
    readonly repository: string,
    readonly reference: { digest: string; kind: 'blob' | 'manifest'; size: number },
    readonly stored: number | undefined,
  ) {
    super(
      stored === undefined
        ? `${reference.kind} ${reference.digest} is not in repository ${repository}`
        : `descriptor of ${reference.digest} says ${reference.size} bytes, stored ${stored}`,
    );
    this.name = 'ManifestReferenceError';
  }
}

/**
 * A manifest or blob deleted by digest while a manifest of its repository still names it (an
 * index listing a platform manifest, a manifest using a layer): deleting it would leave what is
 * served broken. `by`: the first few manifests naming it.
 */
export class StillReferencedError extends DomainError {
  readonly kind = 'still-referenced';
  constructor(
    readonly what: 'manifest' | 'blob',
    readonly digest: string,
    readonly by: string[],
  ) {
    super(
      `${what} ${digest} is named by ${what === 'manifest' ? 'an index' : 'a manifest'} in this repository (${by.join(', ')}): delete ${
        by.length > 1 ? 'those' : 'that'
      } first`,
    );
    this.name = 'StillReferencedError';
  }
}

/** A pushed manifest that is not a valid manifest of a kind the registry stores. */
export class ManifestInvalidError extends DomainError {
  readonly kind = 'manifest-invalid';
  constructor(
    message: string,
    readonly detail?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ManifestInvalidError';
  }
}

/** A manifest's descriptor whose digest is malformed or of an algorithm the registry cannot verify. */
export class DescriptorDigestError extends DomainError {
  readonly kind = 'descriptor-digest';
  constructor(
    message: string,
    readonly digest: unknown,
  ) {
    super(message);
    this.name = 'DescriptorDigestError';
  }
}

/** What the registry depends on and cannot repair itself. */
export type Dependency = 'database' | 'storage';

/**
 * The database or the object store does not answer: refused, reset, timed out, shutting down, a
 * missing bucket. `reason` is a short fixed phrase safe to show anyone (no host, port or key);
 * the underlying error is the `cause`, for the log.
 */
export class DependencyUnavailableError extends DomainError {
  readonly kind = 'dependency-unavailable';
  constructor(
    readonly dependency: Dependency,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable: ${reason}`, options);
    this.name = 'DependencyUnavailableError';
  }
}

/**
 * The file system refused a read or a write it used to allow (read-only, permissions changed under
 * the registry, I/O errors). Unlike a store that stops answering, it is no outage with a start and
 * an end, since other files may still work: each refusal is logged with its file (the `cause`).
 */
export class FileSystemRefusalError extends DependencyUnavailableError {
  constructor(reason: string, options: { cause: unknown }) {
    super('storage', reason, options);
    this.name = 'FileSystemRefusalError';
  }
}

/**
 * No space is left where the bytes go: ENOSPC or EDQUOT on the filesystem, an object store that
 * says it is full, PostgreSQL's disk_full. `requested` is the size the request asked to store,
 * when known.
 */
export class StorageFullError extends DomainError {
  readonly kind = 'storage-full';
  constructor(
    readonly dependency: Dependency,
    readonly requested?: number,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} full${requested === undefined ? '' : ` (${requested} bytes asked for)`}`, options);
    this.name = 'StorageFullError';
  }

  /** The same failure, knowing the size the request asked for. */
  withRequested(requested: number): StorageFullError {
    return new StorageFullError(this.dependency, requested, { cause: this.cause });
  }
}

/**
 * Called after each operation on a dependency: with the failure, or `undefined` when it answered.
 * `startedAt` (Date.now() when the operation began) tells outcomes that straddle a change apart:
 * an answer to what was sent before an outage began does not end it, and a failure of what was
 * sent before it ended does not start a new one.
 */
export type AvailabilityListener = (dependency: Dependency, failure: DependencyUnavailableError | undefined, startedAt?: number) => void;

/** ENOSPC (no space left) or EDQUOT (quota exceeded) from a system call. */
export function isNoSpace(err: unknown): boolean {
  return isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT');
}

/** What to do when a TLS certificate is not trusted: Node.js reads extra CAs at start-up. */
export const TRUST_CA_HINT = 'trust its CA with NODE_EXTRA_CA_CERTS=/path/to/ca.pem';

/**
 * The code of a TLS certificate the client does not trust (self-signed, unknown CA, expired...),
 * or undefined for any other failure. fetch puts the code on its `cause`, undici's request on the
 * error itself.
 */
export function tlsTrustCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } } | undefined;
  const code = e?.cause?.code ?? e?.code ?? '';
  return /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code) ? code : undefined;
}
