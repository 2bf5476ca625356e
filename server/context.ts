// The request context every handler sees, and the few helpers they share.
import type { ParameterizedContext } from 'koa';
import type { Authenticator } from '../auth/authenticator.js';
import type { GuessLimiter } from '../auth/guess-limiter.js';
import type { Action, Authorizer, Principal } from '../auth/authorize.js';
import type { Robots } from '../auth/robots.js';
import type { TokenService } from '../auth/tokens.js';
import { challengeScope } from '../auth/token-scope.js';
import type { Blobs } from '../storage/blobs.js';
import type { Db } from '../storage/db.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { ProjectStore } from '../storage/project-store.js';
import type { Keys } from '../sigstore/keys.js';
import type { CosignPushes } from '../sigstore/cosign-pushes.js';
import type { PullGate } from '../sigstore/pull-gate.js';
import type { PullThrough } from '../mirror/pull-through.js';
import type { GarbageCollector } from '../storage/gc.js';
import type { Signatures } from '../sigstore/signatures.js';
import type { AuditLog } from '../storage/audit.js';
import type { SessionStore } from '../storage/session-store.js';
import type { ReplicaStore } from '../storage/replica-store.js';
import type { Availability } from './availability.js';
import type { Config } from './config.js';
import { OciError } from './errors.js';
import { RegistryResponse } from './response.js';
import type { Logger } from './logging.js';
import type { Metrics } from './metrics.js';
import type { QuotaCheck, QuotaRoomCheck } from './quota.js';

export interface RequestState {
  /** An id for the request's log lines, made when first asked for. */
  readonly reqId: string;
  /** The request's logger, bound to its id (and its user, once known); made on first use. */
  readonly log: Logger;
  /** Adds a binding to every line `log` writes from now on. */
  bindLog(key: string, value: string): void;
  principal: Principal;
  /** The name of the matched route in the routes table (a bounded metrics label). */
  route?: string;
}

export type Ctx = ParameterizedContext<RequestState> & { captures?: string[] };

export interface RegistryDeps {
  config: Config;
  /** Readiness only: statements go through the stores. */
  database: Pick<Db, 'ping' | 'kind'>;
  blobs: Blobs;
  metadata: MetadataStore;
  projects: ProjectStore;
  /** cosign signatures developers push into signed-only projects (sigstore/cosign-pushes.ts). */
  cosignPushes: CosignPushes;
  /** Project quotas, one instance so that what one check lets through counts for the next (server/quota.ts). */
  checkQuota: QuotaCheck;
  quotaRoom: QuotaRoomCheck;
  signatures: Signatures;
  keys: Keys;
  gate: PullGate;
  /** Mirror projects: what is not held here is fetched from the upstream. */
  pullThrough: PullThrough;
  gc: GarbageCollector;
  authenticator: Authenticator;
  /** Refused htpasswd passwords per client address and user: guessing is bounded (auth/guess-limiter.ts). */
  guesses: GuessLimiter;
  authorizer: Authorizer;
  robots: Robots;
  /** The built-in token service, in token mode (REGISTRY_AUTH=token). */
  tokens?: TokenService;
  log: Logger;
  metrics: Metrics;
  /** Which dependencies answer, as the last operations on them found. */
  availability: Availability;
  /** Console sign-ins (server/console-session.ts). */
  sessions: SessionStore;
  audit: AuditLog;
  /** Replicas sharing this database, by their heartbeats. */
  replicas: ReplicaStore;
}

/** What Koa sends as the type of an object body. */
export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * A JSON body, as Koa would send the object, but serialized here: Koa's body setter asks of an
 * object whether it is a web ReadableStream, Blob or Response, and the first `Response` a process
 * names loads Node's bundled fetch, 40-50 ms of compiling on the main thread. A restarted
 * registry paid it on its first /readyz, while its first pulls waited (start-up profile, issue 22).
 */
export function jsonBody(ctx: Ctx, value: unknown): void {
  if (!ctx.response.type) ctx.type = JSON_TYPE;
  ctx.body = JSON.stringify(value);
}

/** The n-th regexp capture of the matched route. */
export function capture(ctx: Ctx, index: number): string {
  return ctx.captures?.[index] ?? '';
}

/** A status with no body and `Content-Length: 0` (Koa would otherwise write the status text). */
export function emptyResponse(ctx: Ctx, status: number): void {
  ctx.body = null;
  ctx.status = status;
}

/**
 * Whether an `If-None-Match` header matches the representation whose ETag is `etag` (a quoted
 * string), as RFC 9110 §13.1.2 has it: `*`, or a comma-separated list of entity tags compared
 * weakly (a `W/` prefix ignored). Clients send the ETag they were given, alone (docker, crane) or
 * in a list with others (an HTTP cache revalidating several stored answers); a header that does
 * not parse matches nothing, so the full answer is sent.
 */
export function ifNoneMatch(header: string, etag: string): boolean {
  if (header === etag) return true; // the common case, without parsing
  if (header.trim() === '*') return true;
  let i = 0;
  while (i < header.length) {
    const c = header[i]!;
    if (c === ' ' || c === '\t' || c === ',') {
      i++;
      continue;
    }
    if (header.startsWith('W/', i)) i += 2;
    if (header[i] !== '"') return false;
    const close = header.indexOf('"', i + 1);
    if (close < 0) return false;
    if (header.slice(i, close + 1) === etag) return true;
    i = close + 1;
    // After a tag: only whitespace up to the next comma, or the end.
    while (i < header.length && (header[i] === ' ' || header[i] === '\t')) i++;
    if (i < header.length && header[i] !== ',') return false;
  }
  return false;
}

/** Sets a flat [name, value, ...] list of headers one by one. */
export function setHeaders(ctx: Ctx, headers: readonly string[]): void {
  for (let i = 0; i < headers.length; i += 2) ctx.set(headers[i]!, headers[i + 1]!);
}

/**
 * Answers `status` with `headers` (a flat [name, value, ...] list) and `body`, Content-Length
 * added; a HEAD gets the same headers and no body, so its Content-Length announces what a GET
 * would send (`body` may be a number of bytes when only a HEAD is answered). Written with the
 * status line in one go when nothing was set header by header (server/response.ts), and ended
 * with the other answers of this turn of the event loop (RegistryResponse.endSoon), else through
 * Koa.
 */
export function answer(ctx: Ctx, status: number, headers: readonly string[], body: Buffer | number): void {
  const length = typeof body === 'number' ? body : body.length;
  if (ctx.res instanceof RegistryResponse && ctx.res.headersUntouched) {
    // Node refuses a bad header value here, before anything is written: still the error middleware's.
    ctx.res.writeHead(status, [...headers, 'Content-Length', String(length)]);
    ctx.respond = false;
    ctx.res.endSoon(ctx.method === 'HEAD' || typeof body === 'number' ? undefined : body);
    return;
  }
  ctx.status = status;
  setHeaders(ctx, headers);
  if (typeof body === 'number') ctx.set('Content-Length', String(length));
  else ctx.body = body;
}

/** A single query parameter; repeated parameters are refused rather than guessed at. */
export function queryParam(ctx: Ctx, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new OciError('QUERY_PARAMETER_INVALID', `query parameter ${name} given more than once`);
  return value;
}

/**
 * A query parameter compared with text in the database: PostgreSQL's text cannot hold NUL, and a
 * statement given one fails (a 500 before this): a 400 naming the parameter instead.
 */
export function textParam(ctx: Ctx, name: string): string | undefined {
  const value = queryParam(ctx, name);
  if (value?.includes('\u0000')) throw new OciError('QUERY_PARAMETER_INVALID', `${name} may not contain NUL`);
  return value;
}

/**
 * 429 with Retry-After (server/app.ts sets it from `retryAfter`) while this request's address is
 * past its bound on refused passwords for `user` (auth/guess-limiter.ts), the right password
 * included. For Basic credentials and console sign-ins alike.
 */
export function refuseWhileGuessing(ctx: Ctx, guesses: GuessLimiter, user: string): void {
  const wait = guesses.wait(ctx.request.ip, user);
  if (wait > 0) {
    throw new OciError('TOOMANYREQUESTS', `too many wrong passwords for ${user} from this address: try again in ${wait} s`, {
      retryAfter: wait,
    });
  }
}

/** Counts a refused password for `user` from this request's address; reaching the bound is logged once. */
export function countRefusedPassword(ctx: Ctx, guesses: GuessLimiter, user: string): void {
  if (guesses.failed(ctx.request.ip, user)) {
    ctx.state.log.warn({ user, address: ctx.request.ip }, 'too many wrong passwords: this address waits before its next try for this user');
  }
}

/**
 * Calls `gone` once: when the response closes, or when the connection does. Node attaches a
 * pipelined request's response to the socket only once the answers before it are written, so a
 * queued one never closes when the client leaves: 20 pipelined blob pulls of a mirror, their
 * socket closed, kept 19 upstream fetches going (adversarial testing).
 */
function whenClosed(ctx: Ctx, gone: () => void): void {
  const res = ctx.res;
  const socket = ctx.req.socket;
  if (res.closed || socket.destroyed) {
    gone();
    return;
  }
  const once = (): void => {
    res.off('close', once);
    socket.off('close', once);
    gone();
  };
  res.once('close', once);
  socket.once('close', once);
}

/** Aborts when the response closes, however it ended: what the request held is no longer wanted. */
export function closedSignal(ctx: Ctx): AbortSignal {
  const controller = new AbortController();
  whenClosed(ctx, () => controller.abort());
  return controller.signal;
}

/** Aborts when the client goes away before the response is finished. */
export function requestSignal(ctx: Ctx): AbortSignal {
  const controller = new AbortController();
  whenClosed(ctx, () => {
    if (!ctx.res.writableFinished) controller.abort(new Error('client closed the connection'));
  });
  return controller.signal;
}

/**
 * Checks permission before anything is looked up. Anonymous callers get 401 with the challenge
 * (so clients log in and retry); authenticated ones get 403.
 */
export async function requireAccess(ctx: Ctx, deps: Pick<RegistryDeps, 'authorizer'>, action: Action, target: string): Promise<void> {
  const decision = await deps.authorizer.check(ctx.state.principal, action, target);
  if (decision.allowed) return;
  const detail = [{ Type: 'repository', Name: target, Action: action }];
  // Token mode: the challenge names the scope the request needs, so the client asks for it.
  const scope = challengeScope(action, target);
  const bearer = ctx.state.principal.grants !== undefined;
  if (decision.insufficientScope) {
    throw new OciError('UNAUTHORIZED', decision.reason ?? 'insufficient scope', detail, {
      ...(scope ? { scope } : {}),
      error: 'insufficient_scope',
    });
  }
  if (ctx.state.principal.user === undefined) {
    // An anonymous token that cannot do this: as distribution answers, the scope is insufficient.
    const challenge = { ...(scope ? { scope } : {}), ...(bearer ? { error: 'insufficient_scope' as const } : {}) };
    throw new OciError('UNAUTHORIZED', 'authentication required', detail, challenge);
  }
  throw new OciError('DENIED', decision.reason ?? 'requested access to the resource is denied', detail);
}

/** True when the caller may do `action` on `target` (for filtering lists, never for refusals). */
export async function allowed(ctx: Ctx, deps: Pick<RegistryDeps, 'authorizer'>, action: Action, target: string): Promise<boolean> {
  // A question, not the action: it must not create the project a push would (autocreate).
  return (await deps.authorizer.check(ctx.state.principal, action, target, { dryRun: true })).allowed;
}
