// What went wrong, in one line a person can act on: the file, URL, address or setting concerned
// and what to do. For `signet serve`'s start-up and the management commands alike; a stack trace
// is printed only for an error nobody foresaw (a bug).
import { FILE_SYSTEM_REASONS, tlsTrustCode, TRUST_CA_HINT } from '../storage/errors.js';

/** A failure already put in words: printed as it is, without a stack. */
export class UserFacingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserFacingError';
  }
}

interface SystemError {
  code?: string;
  message?: string;
  errors?: unknown[];
  cause?: unknown;
}

const REASONS: Record<string, string> = {
  ...FILE_SYSTEM_REASONS,
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'the connection was reset',
  ETIMEDOUT: 'the connection timed out',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (temporarily)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'the connection closed before an answer',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'its TLS certificate is signed by an untrusted CA',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate cannot be verified',
  ERR_TLS_CERT_ALTNAME_INVALID: 'its TLS certificate does not name this host',
  CERT_HAS_EXPIRED: 'its TLS certificate has expired',
  ERR_SSL_WRONG_VERSION_NUMBER: 'it does not speak TLS (try http://)',
};

/** The reason an error gives, without its code prefix, path or stack; looks inside fetch's and AggregateError's wrappers. */
export function reasonOf(err: unknown): string {
  const e = (err ?? {}) as SystemError;
  if (e.code && REASONS[e.code]) return REASONS[e.code]!;
  if (e.cause !== undefined && e.message === 'fetch failed') return reasonOf(e.cause);
  if (Array.isArray(e.errors) && e.errors.length > 0) return reasonOf(e.errors[0]);
  const message = typeof e.message === 'string' && e.message ? e.message : String(err);
  // "ENOENT: no such file or directory, open '/x'" → "no such file or directory"
  return message.replace(/^[A-Z_]+: /, '').replace(/, \w+ '.*'$/, '');
}

/** A management command could not reach the registry at all. */
export function unreachable(url: string, err: unknown): UserFacingError {
  const hint = tlsTrustCode(err) ? TRUST_CA_HINT : 'is it running? Give its address with --registry or SIGNET_REGISTRY';
  return new UserFacingError(`cannot reach the registry at ${url}: ${reasonOf(err)}; ${hint}`);
}

/** A file the user named could not be read. */
export function unreadable(what: string, file: string, err: unknown): UserFacingError {
  return new UserFacingError(`${what} ${file}: ${reasonOf(err)}`);
}

/** The listener could not be opened on `addr`, given by the setting `variable`. */
export function cannotListen(variable: string, addr: string, err: unknown): UserFacingError {
  const code = (err as SystemError).code;
  const advice =
    code === 'EADDRINUSE'
      ? 'the port is taken (another registry running?); stop that process or choose another port'
      : code === 'EACCES'
        ? 'permission denied: ports below 1024 need privileges; choose a port above 1023'
        : code === 'EADDRNOTAVAIL'
          ? 'no network interface of this machine has that address; use :port for every interface'
          : reasonOf(err);
  return new UserFacingError(`cannot listen on ${variable}=${addr}: ${advice}`);
}

/** A connection string with its password replaced, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable)';
  }
}

/** The database could not be opened or prepared. */
export function databaseFailure(settings: { url?: string; datadirectory: string }, err: unknown): UserFacingError {
  const reason = reasonOf(err).replace(/^embedded database: /, '');
  if (settings.url) {
    return new UserFacingError(
      `cannot use the PostgreSQL database of REGISTRY_DATABASE_URL (${redactUrl(settings.url)}): ${reason}; check the URL, and that the server runs and accepts it`,
    );
  }
  return new UserFacingError(`cannot open the embedded database in REGISTRY_DATABASE_DATADIRECTORY (${settings.datadirectory}): ${reason}`);
}

/** One line naming what failed and what to do; a stack trace only for what nobody foresaw. */
export function failureLine(err: unknown): string {
  const { code, path } = err as { code?: unknown; path?: unknown };
  return err instanceof UserFacingError
    ? err.message
    : typeof code === 'string' && typeof path === 'string'
      ? `${path}: ${reasonOf(err)}`
      : err instanceof Error
        ? (err.stack ?? err.message)
        : String(err);
}
