// The Koa application. Middleware order: request context → errors → authentication → routes.
import { randomUUID } from 'node:crypto';
import { Stream } from 'node:stream';
import Koa from 'koa';
import { ANONYMOUS, type Principal } from '../auth/authorize.js';
import type { Authentication } from '../auth/authenticator.js';
import { createClientAddress, createProxyCheck } from './client-address.js';
import { countRefusedPassword, refuseWhileGuessing, setHeaders, type Ctx, type RegistryDeps, type RequestState } from './context.js';
import type { Logger } from './logging.js';
import { DependencyUnavailableError, DigestMismatchError, FileSystemRefusalError, StorageFullError } from '../storage/errors.js';
import { UpstreamError, UpstreamUnavailableError } from '../mirror/upstream.js';
import { ERROR_CODES, OciError, ociErrorBody, toOciError } from './errors.js';
import { observeRequest } from './metrics.js';
import { CONSOLE_HEADER, createSessionAuthentication, sessionCookieOf } from './console-session.js';
import { createRegistryRoutes } from './routes.js';
import { RegistryResponse } from './response.js';

const API_VERSION_HEADER = 'Docker-Distribution-API-Version';
/**
 * Every answer's headers. moby's ping and `docker manifest` check the API version on every
 * response, 401s included.
 */
const COMMON_HEADERS: readonly string[] = [API_VERSION_HEADER, 'registry/2.0', 'X-Content-Type-Options', 'nosniff'];
/**
 * containers/image reads X-Registry-Supports-Signatures on GET /v2/ (200 or 401) and then stores
 * and reads simple signatures through /extensions/v2/ instead of a lookaside.
 */
const V2_HEADERS_WITH_SIGNATURES: readonly string[] = [...COMMON_HEADERS, 'X-Registry-Supports-Signatures', '1'];

/**
 * The per-request state. A pino child logger costs about 10 µs to make and most requests log
 * nothing (with the access log off), so it is made when something is first logged (bench/,
 * "authenticated manifest GET"); so is the request id it carries (a random UUID per request was
 * 0.3 % of a manifest GET's CPU under load, for ids no line printed).
 */
class RequestContext implements RequestState {
  principal: Principal = ANONYMOUS;
  route?: string;
  private id: string | undefined;
  private readonly bindings: Record<string, string> = {};
  private logger: Logger | undefined;

  constructor(private readonly root: Logger) {}

  get reqId(): string {
    return (this.id ??= randomUUID());
  }

  get log(): Logger {
    return (this.logger ??= this.root.child({ reqId: this.reqId, ...this.bindings }));
  }

  bindLog(key: string, value: string): void {
    this.bindings[key] = value;
    this.logger = undefined;
  }
}

export function createApp(deps: RegistryDeps): Koa<RequestState> {
  const app = new Koa<RequestState>();
  // Koa's own proxy mode would believe X-Forwarded-For from anyone; the client address is set
  // below, believing it only from REGISTRY_HTTP_TRUSTEDPROXIES.
  app.proxy = false;
  const clientAddress = createClientAddress(deps.config.http.trustedproxies);
  const fromTrustedProxy = createProxyCheck(deps.config.http.trustedproxies);
  /**
   * `scheme://host` as the client addressed the registry, for a token realm on its own address:
   * https when it serves TLS, or when a trusted proxy says it terminated TLS (X-Forwarded-Proto),
   * so that clients never send credentials to a plain-HTTP realm of a registry they reach by HTTPS.
   */
  const originOf = (ctx: Ctx): string => {
    const forwarded = fromTrustedProxy(ctx.req.socket.remoteAddress)
      ? ctx.get('X-Forwarded-Proto').split(',')[0]!.trim().toLowerCase()
      : '';
    const scheme = deps.config.http.tls || forwarded === 'https' ? 'https' : 'http';
    return `${scheme}://${ctx.get('Host') || 'localhost'}`;
  };
  // Errors are rendered by our middleware; this only sees failures while streaming a response.
  app.on('error', (err: Error & { code?: string }) => {
    if (err.code === 'ECONNRESET' || err.code === 'ERR_STREAM_PREMATURE_CLOSE' || err.name === 'AbortError') return;
    // The storage went away mid-body: logged once as an outage (server/availability.ts).
    if (err instanceof DependencyUnavailableError) return;
    // A mirror's upstream sent bytes that are not the blob (a wrong digest, too many bytes): its
    // fault, logged once at warn by the fetch (mirror/pull-through.ts), not per client cut off.
    if (err instanceof DigestMismatchError || err instanceof UpstreamError || err instanceof UpstreamUnavailableError) return;
    deps.log.error({ err }, 'response stream failed');
  });

  // Authentication: no credentials is anonymous; wrong credentials are refused on every route.
  // The console's session cookie counts on the management API when no Authorization header is sent.
  const sessionAuth = createSessionAuthentication(deps.sessions, deps.authenticator, deps.robots);
  const fromCredentials = (ctx: Ctx, authorization: string | undefined): Principal | Promise<Principal> => {
    const answer = deps.authenticator.authenticate(authorization, ctx.req.socket);
    return answer instanceof Promise ? answer.then((result) => principalOf(ctx, result)) : principalOf(ctx, answer);
  };
  const principalOf = (ctx: Ctx, result: Authentication): Principal => {
    // Password guessing: an htpasswd user's pair with this address past its refused passwords
    // gets 429, the right password included (auth/guess-limiter.ts).
    const user = result.ok ? (result.principal.robot || result.principal.grants ? undefined : result.principal.user) : result.user;
    if (user !== undefined) {
      refuseWhileGuessing(ctx, deps.guesses, user);
      if (!result.ok) countRefusedPassword(ctx, deps.guesses, user);
    }
    if (!result.ok && !isLookasideRead(ctx)) {
      ctx.state.log.info({ path: ctx.path }, result.invalidToken ? 'invalid token' : 'invalid credentials');
      if (result.invalidToken) {
        // Expired, revoked, or not ours: RFC 6750's invalid_token makes containerd and docker fetch another.
        throw new OciError('UNAUTHORIZED', 'the bearer token is invalid or has expired', undefined, { error: 'invalid_token' });
      }
      throw new OciError('UNAUTHORIZED', 'invalid username or password', undefined, ctx.path === '/token' ? { basic: true } : undefined);
    }
    // Lookaside reads answer only 200 or 404 (clients abort on anything else): bad credentials
    // there read as anonymous, which sees 404 for anything private.
    return result.ok ? result.principal : ANONYMOUS;
  };
  /** Who is asking; without a promise when the authenticator answers at once (most requests). */
  const authenticated = (ctx: Ctx): Principal | Promise<Principal> => {
    const authorization = ctx.get('Authorization') || undefined;
    if (authorization === undefined && deps.config.console.enabled && sessionCookieOf(ctx) !== undefined) {
      return sessionAuth.principalOf(ctx).then((principal) => principal ?? fromCredentials(ctx, authorization));
    }
    return fromCredentials(ctx, authorization);
  };

  // One middleware before the routes, in this order: request context (id, logger, the headers
  // every response carries); errors (every failure becomes {"errors":[{code,message,detail}]}
  // with the code's status); the Host header; authentication; then, once answered, the metrics
  // and the access log. One async function rather than four: each level of Koa's chain costs a
  // dispatch, a promise and a microtask turn on every request, and the manifest GET by tag
  // (bench/ row 20) spends most of its JavaScript on such fixed costs.
  app.use(async (ctx, next) => {
    const started = process.hrtime.bigint();
    ctx.state = new RequestContext(deps.log);
    ctx.request.ip = clientAddress(ctx.req.socket.remoteAddress, ctx.get('X-Forwarded-For') || undefined);
    const common = deps.config.signatures.extension && ctx.path.startsWith('/v2') ? V2_HEADERS_WITH_SIGNATURES : COMMON_HEADERS;
    // Written with the head, whoever writes it (server/response.ts); set one by one on a response
    // made elsewhere (a test's own server).
    if (ctx.res instanceof RegistryResponse) ctx.res.setCommonHeaders(common);
    else setHeaders(ctx, common);
    try {
      // HTTP/1.1 requires a Host header (RFC 9112 §3.2); Node's own check is off so the refusal
      // has the registry's error shape.
      if (ctx.req.httpVersionMajor === 1 && ctx.req.httpVersionMinor >= 1 && !ctx.get('Host')) {
        throw new OciError('REQUEST_INVALID', 'the Host header is required');
      }
      const who = authenticated(ctx);
      const principal = who instanceof Promise ? await who : who;
      ctx.state.principal = principal;
      if (principal.user !== undefined) ctx.state.bindLog('user', principal.user);
      await next();
    } catch (err) {
      handleError(ctx, err, deps, originOf);
    } finally {
      // A streamed body (or one the handler sends itself) is counted when the response is over,
      // as 499 when the client left first. Any other body is written right after this: counted
      // now, without a listener per request.
      const observe = (status: number): void =>
        observeRequest(deps.metrics, ctx.state.route ?? 'none', ctx.method, status, Number(process.hrtime.bigint() - started) / 1e9);
      if (ctx.respond === false || ctx.body instanceof Stream) {
        const res = ctx.res;
        const over = (): void => observe(res.writableFinished ? res.statusCode : 499);
        // A handler that sent the body itself may have seen the response close already, or
        // finished it. A small body written whole (server/context.ts, answer) is decided and
        // ends with this turn's other answers: counted now rather than by a listener per request.
        if (res instanceof RegistryResponse && res.endingSoon) observe(res.statusCode);
        else if (res.closed || res.writableFinished) over();
        else res.once('close', over);
      } else {
        observe(ctx.status);
      }
      if (!deps.config.log.accesslog.disabled) {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        ctx.state.log.info(
          { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10, user: ctx.state.principal.user },
          'request',
        );
      }
    }
  });

  app.use(createRegistryRoutes(deps).routes);

  function isLookasideRead(ctx: { method: string; path: string }): boolean {
    return (ctx.method === 'GET' || ctx.method === 'HEAD') && ctx.path.startsWith(`${deps.config.signatures.lookaside.path}/`);
  }

  // Nothing matched: a known path with another method is 405, anything else 404.
  app.use(async (ctx) => {
    const matched = (ctx as { matched?: unknown[] }).matched?.length ?? 0;
    throw matched > 0
      ? new OciError('UNSUPPORTED', `${ctx.method} is not supported here`)
      : new OciError('NOT_FOUND', 'no such endpoint', { path: ctx.path });
  });

  return app;
}

/** Seconds a client is told to wait after a 503 (docker and containers/image use their own backoff). */
const RETRY_AFTER_SECONDS = '5';

/**
 * Answers a failed request, and cannot fail itself: a client that is gone, or a response whose
 * headers (and part of its body) went out already, ends quietly; anything else gets the OCI error
 * body, with one log line for what needs a person's attention.
 */
function handleError(ctx: Ctx, err: unknown, deps: RegistryDeps, originOf: (ctx: Ctx) => string): void {
  const socket = ctx.res.socket;
  if (ctx.headerSent || !socket || socket.destroyed) {
    // Nothing more can be said: record it as nginx does (499, client closed request), and cut a
    // half-sent body off, so the client sees a broken transfer rather than a short one.
    ctx.state.log.debug({ err }, ctx.headerSent ? 'response failed after its headers were sent' : 'client went away');
    if (ctx.headerSent) ctx.res.destroy();
    else ctx.status = 499;
    ctx.respond = false;
    return;
  }
  let oci = toOciError(err);
  if (!oci) {
    ctx.state.log.error({ err }, 'request failed');
    oci = new OciError('UNKNOWN', ERROR_CODES.UNKNOWN.message);
  } else if (err instanceof StorageFullError) {
    ctx.state.log.warn({ dependency: err.dependency, requested: err.requested, cause: String(err.cause) }, 'storage full');
  } else if (err instanceof FileSystemRefusalError) {
    // No outage is logged for it (one file may be unreadable while the rest serve): say which file.
    ctx.state.log.warn({ reason: err.reason, cause: String(err.cause) }, 'storage refused the request');
  } else if (err instanceof UpstreamError) {
    // A mirror's upstream answered what this registry refuses (502): its fault, not a bug here, so a
    // warning naming it, without a stack trace, however often clients ask.
    ctx.state.log.warn({ upstream: err.upstream, reason: err.message }, 'upstream refused');
  } else if (oci.status >= 500 && oci.code !== 'UNAVAILABLE') {
    // An outage is logged when it starts and ends (server/availability.ts), not per request.
    ctx.state.log.error({ err }, 'request failed');
  }
  // The console signs in with a form: a Basic challenge would make the browser prompt instead.
  if (oci.status === 401 && !ctx.get(CONSOLE_HEADER)) {
    const challenge = deps.authenticator.challenge({ origin: originOf(ctx), ...oci.challenge });
    if (challenge) ctx.set('WWW-Authenticate', challenge);
  }
  if (oci.code === 'UNAVAILABLE') ctx.set('Retry-After', RETRY_AFTER_SECONDS);
  const retryAfter = (oci.detail as { retryAfter?: unknown } | undefined)?.retryAfter;
  if (oci.code === 'TOOMANYREQUESTS' && typeof retryAfter === 'number') ctx.set('Retry-After', String(retryAfter));
  // The body was not read to its end (a failed upload): read and drop the rest, so that the
  // client reads this answer instead of a connection reset (Node neither drains a body that a
  // handler started reading nor reuses the connection until it ends).
  if (!ctx.req.complete) ctx.req.resume();
  renderError(ctx, oci);
}

function renderError(ctx: Ctx, err: OciError): void {
  // Koa's own error path would drop headers; set the ones clients need here.
  ctx.set(API_VERSION_HEADER, 'registry/2.0');
  ctx.status = err.status;
  ctx.type = 'application/json';
  if (ctx.method === 'HEAD') {
    ctx.body = null;
    ctx.status = err.status;
    return;
  }
  ctx.body = ociErrorBody(err);
}
