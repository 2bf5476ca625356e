// Who is calling: HTTP Basic credentials checked against htpasswd. No credentials means anonymous
// (the authorizer decides what anonymous callers may do); wrong credentials are refused outright.
import type { Htpasswd } from './htpasswd.js';
import { ANONYMOUS, type Principal } from './authorize.js';

export type Authentication = { ok: true; principal: Principal } | { ok: false };

export interface Authenticator {
  /**
   * `connection` is the request's socket. Anonymous callers and credentials verified a moment ago
   * are answered at once, without a promise: a client sends its credentials with every request,
   * and awaiting a settled answer costs more than the rest of the check (bench/, "authenticated
   * manifest GET").
   */
  authenticate(authorization: string | undefined, connection: object): Authentication | Promise<Authentication>;
  /** The WWW-Authenticate challenge for 401 answers. */
  readonly challenge: string;
  /** A digest of the user's current credentials entry (undefined: no such user any more). */
  credentialTag(user: string): Promise<string | undefined>;
}

const ANONYMOUS_CALLER: Authentication = Object.freeze({ ok: true, principal: ANONYMOUS });
const REFUSED: Authentication = Object.freeze({ ok: false });

/** The credentials a connection last presented, accepted under htpasswd table `version`. */
interface Accepted {
  authorization: string;
  version: number;
  answer: Authentication;
}

export function createBasicAuthenticator(htpasswd: Htpasswd, realm: string): Authenticator {
  // Each keep-alive connection's last accepted Authorization header, compared as it stands with
  // the next request's: a client sends the same header on every request of a connection. The
  // htpasswd cache behind this is keyed by a sha256 of the credentials, and decoding and hashing
  // them on every request cost 10 µs of a 70 µs manifest GET (bench/, "authenticated manifest
  // GET": 0.84-0.90x of anonymous GETs; 0.98x with this). The header, which holds the password,
  // is kept as long as its connection and no longer; any other header on that connection goes
  // the full way (a proxy may carry several clients over one), as does every request once the
  // htpasswd file changed or is due a look.
  const accepted = new WeakMap<object, Accepted>();
  return {
    challenge: `Basic realm="${realm.replace(/["\\]/g, '')}"`,
    credentialTag: (user) => htpasswd.entryTag(user),
    authenticate(authorization, connection) {
      if (!authorization) return ANONYMOUS_CALLER;
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
      const settle = (ok: boolean): Authentication => {
        if (!ok) return REFUSED;
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
  return { challenge: '', authenticate: () => ANONYMOUS_CALLER, credentialTag: async () => undefined };
}
