// What a failure of the PostgreSQL server, or of the way to it, means to the registry: the
// database is unavailable (refused, reset, timed out, shutting down) or full. Errors that are about
// the statement itself (a constraint, a syntax error) pass through unchanged.
import { DependencyUnavailableError, StorageFullError } from './errors.js';

/** Socket errors: the server cannot be reached, or the connection to it broke. */
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

/** SQLSTATEs the server sends when it cannot serve (not about the statement). */
const SQLSTATE_REASONS: Record<string, string> = {
  '57P01': 'shutting down', // admin_shutdown: pg_ctl stop, a failover
  '57P02': 'shutting down', // crash_shutdown
  '57P03': 'not accepting connections yet', // cannot_connect_now: starting up, recovering
  '57014': 'statement canceled', // query_canceled: statement_timeout, pg_cancel_backend
  '53300': 'too many connections',
  '25006': 'read-only (a standby?)', // read_only_sql_transaction: connected to a replica
  '28P01': 'authentication failed', // invalid_password
  '28000': 'authentication failed', // invalid_authorization_specification (pg_hba.conf)
  '3D000': 'database missing', // invalid_catalog_name
};

/**
 * pg reports its own connection failures as plain errors without a code, told apart only by their
 * messages (pg 8: client.js, pg-pool).
 */
const DRIVER_MESSAGES: Array<[RegExp, string]> = [
  [/^Connection terminated due to connection timeout/, 'timed out'],
  [/^timeout exceeded when trying to connect/, 'timed out'],
  [/^Query read timeout/, 'timed out'],
  [/^Connection terminated/, 'connection lost'],
  [/is not queryable/, 'connection lost'],
];

/** The registry's reading of a pg (or PGlite) failure; anything else is returned as it is. */
export function classifyPgError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  if (code === '53100') return new StorageFullError('database', undefined, { cause: err }); // disk_full
  const reason =
    typeof code === 'string'
      ? (SQLSTATE_REASONS[code] ?? NETWORK_REASONS[code] ?? (/^08[0-9A-Z]{3}$/.test(code) ? 'connection lost' : undefined))
      : DRIVER_MESSAGES.find(([pattern]) => pattern.test(err.message))?.[1];
  return reason === undefined ? err : new DependencyUnavailableError('database', reason, { cause: err });
}
