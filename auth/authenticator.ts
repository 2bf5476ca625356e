// Who is calling: HTTP Basic credentials checked against htpasswd (or, for `robot$...` names, the
// robot accounts), or a bearer token from the built-in token service. No credentials means
// anonymous (the authorizer decides what anonymous callers may do); wrong credentials are refused
// outright.
import type { Htpasswd } from './htpasswd.js';
import { ANONYMOUS, type Principal } from './authorize.js';
import { ROBOT_PREFIX, type Robots } from './robots.js';
import type { TokenService, VerifiedToken } from './tokens.js';

/**
 * `invalidToken`: a bearer token that is not (or no longer) valid: the client should get another.
 * `user`: the htpasswd user whose password was refused (counted by auth/guess-limiter.ts).
 */
export type Authentication = { ok: true; principal: Principal } | { ok: false; invalidToken?: boolean; user?: string };

/** What a 401 challenge is about. */
export interface ChallengeRequest {
  /** `scheme://host` of the request, for a realm on the registry's own address. */
  origin: string;
  /** The scope the request needs (`repository:team/app:pull`), when it needs one. */
  scope?: string;
  /** RFC 6750's error: the token is invalid, or lacks the scope. */
  error?: 'invalid_token' | 'insufficient_scope';
  /** The token service's own 401, which asks for Basic credentials. */
  basic?: boolean;
}

export interface Authenticator {
  /**
   * `connection` is the request's socket. Anonymous callers and credentials verified a moment ago
   * are answered at once, without a promise: a client sends its credentials with every request,
   * and awaiting a settled answer costs more than the rest of the check (bench/, "authenticated
   * manifest GET").
   */
  authenticate(authorization: string | undefined, connection: object): Authentication | Promise<Authentication>;
  /** The WWW-Authenticate challenge for 401 answers ('' without authentication). */
  challenge(request: ChallengeRequest): string;
  /** A digest of the user's current credentials entry (undefined: no such user any more). */
  credentialTag(user: string): Promise<string | undefined>;
}

const ANONYMOUS_CALLER: Authentication = Object.freeze({ ok: true, principal: ANONYMOUS });
const REFUSED: Authentication = Object.freeze({ ok: false });
const INVALID_TOKEN: Authentication = Object.freeze({ ok: false, invalidToken: true });

export interface BearerChallenge {
  /** The token service's URL; undefined: `<origin>/token` of each request. */
  realm?: string;
  service: string;
}

export interface AuthenticatorOptions {
  htpasswd: Htpasswd;
  /** The Basic realm. */
  realm: string;
  robots?: Robots;
  /** Token mode: bearer tokens are accepted and 401s carry a Bearer challenge. */
  tokens?: { service: TokenService; challenge: BearerChallenge };
}

/** A challenge parameter's value, quoted (RFC 7235 quoted-string: no quote or backslash inside). */
const quoted = (value: string): string => `"${value.replace(/["\\]/g, '')}"`;

/** The credentials a connection last presented, accepted under htpasswd table `version`. */
interface Accepted {
  authorization: string;
  version: number;
  answer: Authentication;
}

export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const { htpasswd, realm, robots, tokens } = options;
  // Each keep-alive connection's last accepted Authorization header, compared as it stands with
  // the next request's: a client sends the same header on every request of a connection. The
  // htpasswd cache behind this is keyed by a sha256 of the credentials, and decoding and hashing
  // them on every request cost 10 µs of a 70 µs manifest GET (bench/, "authenticated manifest
  // GET": 0.84-0.90x of anonymous GETs; 0.98x with this). The header, which holds the password,
  // is kept as long as its connection and no longer; any other header on that connection goes
  // the full way (a proxy may carry several clients over one), as does every request once the
  // htpasswd file changed or is due a look.
  const accepted = new WeakMap<object, Accepted>();
  const basicChallenge = `Basic realm=${quoted(realm)}`;
  // Each keep-alive connection's last bearer token, and its last robot credentials, as the Basic
  // ones above: the same header again skips parsing, hashing and the cache lookup, but never the
  // check that the token and its subject are still valid (expiry, revocation), made every time.
  const tokenOf = new WeakMap<object, { authorization: string; token: VerifiedToken; answer: Authentication }>();
  const robotOf = new WeakMap<object, { authorization: string; account: string; id: number }>();
  const tokenAnswer = (token: VerifiedToken, answer: Authentication): Authentication | Promise<Authentication> => {
    const valid = token.valid();
    if (valid instanceof Promise) return valid.then((yes) => (yes ? answer : INVALID_TOKEN));
    return valid ? answer : INVALID_TOKEN;
  };
  const verifyToken = (authorization: string, connection: object): Authentication | Promise<Authentication> => {
    const last = tokenOf.get(connection);
    if (last !== undefined && last.authorization === authorization) return tokenAnswer(last.token, last.answer);
    const settle = (token: VerifiedToken | undefined): Authentication | Promise<Authentication> => {
      if (!token) return INVALID_TOKEN;
      const answer: Authentication = Object.freeze({ ok: true, principal: token.principal });
      tokenOf.set(connection, { authorization, token, answer });
      return tokenAnswer(token, answer);
    };
    const verified = tokens!.service.verify(authorization.slice(7).trim());
    return verified instanceof Promise ? verified.then(settle) : settle(verified);
  };
  const robotAnswer = (principal: Principal | undefined, authorization: string, connection: object): Authentication => {
    if (!principal?.robot || principal.user === undefined) return REFUSED;
    robotOf.set(connection, { authorization, account: principal.user, id: principal.robot.id });
    return { ok: true, principal };
  };
  const verifyRobot = (
    user: string,
    secret: string,
    authorization: string,
    connection: object,
  ): Authentication | Promise<Authentication> => {
    if (!robots) return REFUSED;
    const principal = robots.verify(user, secret);
    if (principal instanceof Promise) return principal.then((p) => robotAnswer(p, authorization, connection));
    return robotAnswer(principal, authorization, connection);
  };
  const lastRobot = (authorization: string, connection: object): Authentication | Promise<Authentication> | undefined => {
    const last = robotOf.get(connection);
    if (!robots || last === undefined || last.authorization !== authorization) return undefined;
    const principal = robots.current(last.account, last.id);
    if (principal instanceof Promise) return principal.then((p) => robotAnswer(p, authorization, connection));
    return robotAnswer(principal, authorization, connection);
  };
  return {
    challenge(request) {
      if (!tokens || request.basic) return basicChallenge;
      const { challenge } = tokens;
      let header = `Bearer realm=${quoted(challenge.realm ?? `${request.origin}/token`)},service=${quoted(challenge.service)}`;
      if (request.scope) header += `,scope=${quoted(request.scope)}`;
      if (request.error) header += `,error=${quoted(request.error)}`;
      return header;
    },
    credentialTag: (user) => htpasswd.entryTag(user),
    authenticate(authorization, connection) {
      if (!authorization) return ANONYMOUS_CALLER;
      if (tokens && /^Bearer\s/i.test(authorization)) return verifyToken(authorization, connection);
      const robot = lastRobot(authorization, connection);
      if (robot !== undefined) return robot;
      const version = htpasswd.version();
      const last = accepted.get(connection);
      if (last !== undefined && version !== undefined && last.version === version && last.authorization === authorization) {
        return last.answer;
      }
      const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
      if (!match) return REFUSED;
      const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
      // containers/image (skopeo, podman) answers a Basic challenge with its credentials even when
      // it has none: `Basic Og==`, an empty user and password (docker/docker_client.go,
      // setupRequestAuth). That is an anonymous caller, not a failed login; without this, anonymous
      // pulls from public projects fail with 401 for every containers/image client.
      if (decoded === ':') return ANONYMOUS_CALLER;
      const colon = decoded.indexOf(':');
      if (colon <= 0) return REFUSED;
      const user = decoded.slice(0, colon);
      // Robots are checked on every request (a revocation counts at once) and never against the
      // htpasswd file, whatever it holds under that name.
      if (user.startsWith(ROBOT_PREFIX)) return verifyRobot(user, decoded.slice(colon + 1), authorization, connection);
      const settle = (ok: boolean): Authentication => {
        if (!ok) return { ok: false, user };
        const answer: Authentication = Object.freeze({ ok: true, principal: Object.freeze({ user }) });
        // Remembered only under the version read before the check: a check that waited for a
        // reload (or raced one) is asked again next time, and remembered then.
        if (version !== undefined) accepted.set(connection, { authorization, version, answer });
        return answer;
      };
      const verified = htpasswd.verify(user, decoded.slice(colon + 1));
      return typeof verified === 'boolean' ? settle(verified) : verified.then(settle);
    },
  };
}

/** No authentication configured: everyone is anonymous, and the open authorizer lets them in. */
export function createNoAuthenticator(): Authenticator {
  return { challenge: () => '', authenticate: () => ANONYMOUS_CALLER, credentialTag: async () => undefined };
}
