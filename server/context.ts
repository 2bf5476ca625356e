// The request context every handler sees, and the few helpers they share.
import type { ParameterizedContext } from 'koa';
import type { Authenticator } from '../auth/authenticator.js';
import type { Action, Authorizer, Principal } from '../auth/authorize.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { Blobs } from '../storage/blobs.js';
import type { Db } from '../storage/db.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import type { ProjectStore } from '../storage/project-store.js';
import type { Keys } from '../sigstore/keys.js';
import type { PullGate } from '../sigstore/pull-gate.js';
import type { GarbageCollector } from '../storage/gc.js';
import type { Signatures } from '../sigstore/signatures.js';
import type { AuditLog } from '../storage/audit.js';
import type { SessionStore } from '../storage/session-store.js';
import type { ReplicaStore } from '../storage/replica-store.js';
import type { Availability } from './availability.js';
import type { Config } from './config.js';
import { OciError } from './errors.js';
import type { Logger } from './logging.js';
import type { Metrics } from './metrics.js';

export interface RequestState {
  reqId: string;
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
  db: Db;
  store: BlobStore;
  blobs: Blobs;
  metadata: MetadataStore;
  projects: ProjectStore;
  signatures: Signatures;
  keys: Keys;
  gate: PullGate;
  gc: GarbageCollector;
  authenticator: Authenticator;
  authorizer: Authorizer;
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

/** The n-th regexp capture of the matched route. */
export function capture(ctx: Ctx, index: number): string {
  return ctx.captures?.[index] ?? '';
}

/** A status with no body and `Content-Length: 0` (Koa would otherwise write the status text). */
export function emptyResponse(ctx: Ctx, status: number): void {
  ctx.body = null;
  ctx.status = status;
}

/** A single query parameter; repeated parameters are refused rather than guessed at. */
export function queryParam(ctx: Ctx, name: string): string | undefined {
  const value = ctx.query[name];
  if (Array.isArray(value)) throw new OciError('QUERY_PARAMETER_INVALID', `query parameter ${name} given more than once`);
  return value;
}

/** Aborts when the client goes away before the response is finished. */
export function requestSignal(ctx: Ctx): AbortSignal {
  const controller = new AbortController();
  ctx.res.once('close', () => {
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
  if (ctx.state.principal.user === undefined) throw new OciError('UNAUTHORIZED', 'authentication required', detail);
  throw new OciError('DENIED', decision.reason ?? 'requested access to the resource is denied', detail);
}

/** True when the caller may do `action` on `target` (for filtering lists, never for refusals). */
export async function allowed(ctx: Ctx, deps: Pick<RegistryDeps, 'authorizer'>, action: Action, target: string): Promise<boolean> {
  return (await deps.authorizer.check(ctx.state.principal, action, target)).allowed;
}
