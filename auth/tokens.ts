// The built-in token service of the distribution token specification: short-lived JWT access
// tokens whose `access` claim lists, for each requested scope, exactly the actions the caller's
// roles allow (the same authorizer that guards requests decides), and long-lived refresh tokens
// for the OAuth2 `refresh_token` grant (docker stores one as its identity token after `docker
// login`). Tokens are ES256-signed with one key kept in the database, so every replica issues
// and accepts the same tokens.
//
// A token is only as good as its subject still is: on every request a robot's token is checked
// against the robot (revoked or expired: refused), and a user's against the htpasswd entry it was
// issued under (removed, or the password changed: refused). Verified tokens are remembered, so a
// request pays a map lookup, not a signature check.
import { randomBytes } from 'node:crypto';
import type { CryptoKey, JWTPayload } from 'jose';
import { createLru } from '../storage/lru.js';
import { DomainError } from '../storage/errors.js';
import type { TokenKeyStore } from '../storage/token-key-store.js';
import type { Authorizer, Principal } from './authorize.js';
import type { Htpasswd } from './htpasswd.js';
import type { Robots } from './robots.js';
import { TOKEN_ACTIONS, TokenGrants, type AccessEntry, type ScopeRequest } from './token-scope.js';

/** The caller authenticated, but no token can be issued to it now (its htpasswd entry went away meanwhile). */
export class TokenRefusedError extends DomainError {
  readonly kind = 'token-refused';
  constructor(message: string) {
    super(message);
    this.name = 'TokenRefusedError';
  }
}

const ALGORITHM = 'ES256';
const ACCESS_TYP = 'JWT';
const REFRESH_TYP = 'signet-refresh+jwt';
/** The spec: a token should never be returned with less than 60 seconds to live. */
const MIN_TTL_SECONDS = 60;

export interface TokenServiceOptions {
  keys: TokenKeyStore;
  /** The authorizer requests are checked with (without token grants): what a token may grant. */
  authorizer: Authorizer;
  htpasswd: Htpasswd;
  robots: Robots;
  /** `aud`: the registry's service name, as its challenges name it. */
  service: string;
  /** `iss` */
  issuer: string;
  ttlSeconds: number;
  refreshTtlSeconds: number;
  /** Repository names the registry would accept (others are granted nothing). */
  isValidName: (untrusted: string) => boolean;
}

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: Date;
  access: AccessEntry[];
  refreshToken?: string;
}

export interface TokenService {
  readonly service: string;
  /** A token for what `principal` (Basic credentials or none; never a token's) may do of `scopes`. */
  issue(principal: Principal, scopes: readonly ScopeRequest[], options: { refresh: boolean }): Promise<IssuedToken>;
  /** The principal a refresh token stands for, while it and its subject are still valid. */
  redeem(untrustedRefreshToken: string): Promise<Principal | undefined>;
  /**
   * A valid access token, undefined for any other string. Answered at once for a token verified
   * a moment ago; `valid()` says whether it still is (expiry, its subject), on every request.
   */
  verify(untrustedToken: string): VerifiedToken | undefined | Promise<VerifiedToken | undefined>;
}

export interface VerifiedToken {
  /** The token's subject with its grants. */
  readonly principal: Principal;
  valid(): boolean | Promise<boolean>;
}

interface Verified extends VerifiedToken {
  /** The principal without grants (for liveness checks) and with them (what requests see). */
  subject: Principal;
  principal: Principal;
  expiresAtMs: number;
  /** htpasswd users: the fingerprint of the entry the token was issued under. */
  passwordFingerprint?: string;
  robotId?: number;
}

interface SignetClaims extends JWTPayload {
  access?: AccessEntry[];
  /** A robot's row id: a robot deleted and made again under the same name is another robot. */
  rid?: number;
  /** A user's htpasswd entry fingerprint (auth/htpasswd.ts). */
  pwf?: string;
}

/**
 * The token service, usable at once; `ready` resolves once its signing key is loaded from the
 * database (made on first use), which tokens wait for. It rejects if the key cannot be had.
 */
export function createTokenService(options: TokenServiceOptions): { tokens: TokenService; ready: Promise<void> } {
  const keyPair = loadKeyPair(options.keys);
  return { tokens: createSigningService(options, keyPair), ready: keyPair.then(() => undefined) };
}

interface KeyPair {
  stored: { kid: string; algorithm: string };
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/** jose, loaded by token mode only (35 ms of every start otherwise; issue 22). */
const loadJose = (): Promise<typeof import('jose')> => import('jose');

async function loadKeyPair(keys: TokenKeyStore): Promise<KeyPair> {
  const { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } = await loadJose();
  const stored = await keys.loadOrCreate(async () => {
    const { privateKey, publicKey } = await generateKeyPair(ALGORITHM, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    return {
      kid: await calculateJwkThumbprint(publicJwk),
      algorithm: ALGORITHM,
      privateJwk: { ...(await exportJWK(privateKey)) },
      publicJwk: { ...publicJwk },
    };
  });
  const privateKey = (await importJWK(stored.privateJwk, stored.algorithm)) as CryptoKey;
  const publicKey = (await importJWK(stored.publicJwk, stored.algorithm)) as CryptoKey;
  return { stored, privateKey, publicKey };
}

function createSigningService(options: TokenServiceOptions, keyPair: Promise<KeyPair>): TokenService {
  const { authorizer, htpasswd, robots, service, issuer } = options;
  const verified = createLru<string, Verified>(10_000);

  async function sign(claims: SignetClaims, typ: string, ttlSeconds: number, now: number): Promise<string> {
    const { stored, privateKey } = await keyPair;
    const { SignJWT } = await loadJose();
    return new SignJWT(claims)
      .setProtectedHeader({ alg: stored.algorithm, typ, kid: stored.kid })
      .setIssuer(issuer)
      .setAudience(service)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + ttlSeconds)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(privateKey);
  }

  /** What identifies the subject's credentials in its tokens, or undefined if it has none now. */
  async function subjectClaims(principal: Principal): Promise<Pick<SignetClaims, 'sub' | 'rid' | 'pwf'> | undefined> {
    if (principal.user === undefined) return { sub: '' };
    if (principal.robot) return { sub: principal.user, rid: principal.robot.id };
    const pwf = await htpasswd.fingerprint(principal.user);
    return pwf === undefined ? undefined : { sub: principal.user, pwf };
  }

  async function grant(principal: Principal, scope: ScopeRequest): Promise<AccessEntry | undefined> {
    if (scope.type !== 'repository' || !options.isValidName(scope.name)) return undefined;
    const wanted = new Set(scope.actions.includes('*') ? [...scope.actions, ...TOKEN_ACTIONS] : scope.actions);
    const actions: string[] = [];
    // A dry run: issuing a token writes nothing (it is a GET, and POST /token is served in
    // read-only mode). A push that would create its project (autocreate) is granted; docker's
    // push with the token then creates it, as a push with Basic credentials does.
    for (const action of TOKEN_ACTIONS) {
      if (wanted.has(action) && (await authorizer.check(principal, action, scope.name, { dryRun: true })).allowed) actions.push(action);
    }
    if (scope.actions.includes('*') && actions.length === TOKEN_ACTIONS.length) actions.push('*');
    return { type: 'repository', name: scope.name, actions };
  }

  /** Whether the subject a token was issued to may still use it. */
  function alive(entry: Verified): boolean | Promise<boolean> {
    if (entry.robotId !== undefined) {
      const current = robots.current(entry.subject.user!, entry.robotId);
      return current instanceof Promise ? current.then((p) => p !== undefined) : current !== undefined;
    }
    if (entry.passwordFingerprint !== undefined) {
      // Waits for a look at the htpasswd file when one is due, as Basic credentials do: the first
      // request after a user was removed (or changed password) is refused, not answered from the old file.
      const current = htpasswd.fingerprint(entry.subject.user!);
      return current instanceof Promise
        ? current.then((fingerprint) => fingerprint === entry.passwordFingerprint)
        : current === entry.passwordFingerprint;
    }
    return true;
  }

  /** The claims of a token of type `typ` signed by our key, for our service, by our issuer; else undefined. */
  async function readClaims(untrusted: string, typ: string): Promise<SignetClaims | undefined> {
    const { stored, publicKey } = await keyPair;
    const { jwtVerify } = await loadJose();
    try {
      const { payload } = await jwtVerify<SignetClaims>(untrusted, publicKey, {
        algorithms: [stored.algorithm],
        issuer,
        audience: service,
        typ,
        requiredClaims: ['exp', 'sub'],
      });
      return payload;
    } catch {
      return undefined;
    }
  }

  function subjectOf(claims: SignetClaims): { subject: Principal; robotId?: number; passwordFingerprint?: string } | undefined {
    const user = claims.sub;
    if (!user) return { subject: {} };
    if (typeof claims.rid === 'number') return { subject: { user }, robotId: claims.rid };
    if (typeof claims.pwf === 'string') return { subject: { user }, passwordFingerprint: claims.pwf };
    return undefined;
  }

  async function load(untrusted: string): Promise<Verified | undefined> {
    const claims = await readClaims(untrusted, ACCESS_TYP);
    if (!claims || !Array.isArray(claims.access) || claims.exp === undefined) return undefined;
    const who = subjectOf(claims);
    if (!who) return undefined;
    const access = claims.access.filter(
      (e): e is AccessEntry =>
        typeof e?.type === 'string' &&
        typeof e.name === 'string' &&
        Array.isArray(e.actions) &&
        e.actions.every((a) => typeof a === 'string'),
    );
    let subject = who.subject;
    if (who.robotId !== undefined) {
      const current = await robots.current(subject.user!, who.robotId);
      if (!current) return undefined;
      subject = current;
    }
    const entry: Verified = {
      subject,
      principal: Object.freeze({ ...subject, grants: new TokenGrants(access) }),
      expiresAtMs: claims.exp * 1000,
      ...(who.robotId !== undefined ? { robotId: who.robotId } : {}),
      ...(who.passwordFingerprint !== undefined ? { passwordFingerprint: who.passwordFingerprint } : {}),
      valid: () => (entry.expiresAtMs > Date.now() ? alive(entry) : false),
    };
    verified.set(untrusted, entry, { ttl: Math.max(1, entry.expiresAtMs - Date.now()) });
    return entry;
  }

  return {
    service,
    async issue(principal, scopes, { refresh }) {
      const subject = await subjectClaims(principal);
      if (!subject) throw new TokenRefusedError('the account changed while the token was being issued; try again');
      const access: AccessEntry[] = [];
      for (const scope of scopes) {
        const entry = await grant(principal, scope);
        if (entry && entry.actions.length > 0) access.push(entry);
      }
      const now = Math.floor(Date.now() / 1000);
      const ttl = Math.max(MIN_TTL_SECONDS, options.ttlSeconds);
      const token = await sign({ ...subject, access }, ACCESS_TYP, ttl, now);
      let refreshToken: string | undefined;
      if (refresh && principal.user !== undefined) refreshToken = await sign({ ...subject }, REFRESH_TYP, options.refreshTtlSeconds, now);
      return { token, expiresIn: ttl, issuedAt: new Date(now * 1000), access, ...(refreshToken ? { refreshToken } : {}) };
    },
    async redeem(untrusted) {
      const claims = await readClaims(untrusted, REFRESH_TYP);
      const who = claims && subjectOf(claims);
      if (!who || who.subject.user === undefined) return undefined;
      if (who.robotId !== undefined) return robots.current(who.subject.user, who.robotId);
      return (await htpasswd.fingerprint(who.subject.user)) === who.passwordFingerprint ? who.subject : undefined;
    },
    verify(untrusted) {
      return verified.get(untrusted) ?? load(untrusted);
    },
  };
}
