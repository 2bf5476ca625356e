// Who is calling: HTTP Basic credentials checked against htpasswd. No credentials means anonymous
// (the authorizer decides what anonymous callers may do); wrong credentials are refused outright.
import type { Htpasswd } from './htpasswd.js';
import { ANONYMOUS, type Principal } from './authorize.js';

export type Authentication = { ok: true; principal: Principal } | { ok: false };

export interface Authenticator {
  /**
   * Anonymous callers and credentials verified a moment ago are answered at once, without a
   * promise: a client sends its credentials with every request, and awaiting a settled answer
   * costs more than the rest of the check (bench/, "authenticated manifest GET").
   */
  authenticate(authorization: string | undefined): Authentication | Promise<Authentication>;
  /** The WWW-Authenticate challenge for 401 answers. */
  readonly challenge: string;
}

const ANONYMOUS_CALLER: Authentication = Object.freeze({ ok: true, principal: ANONYMOUS });
const REFUSED: Authentication = Object.freeze({ ok: false });

function outcome(verified: boolean, user: string): Authentication {
  return verified ? { ok: true, principal: { user } } : REFUSED;
}

export function createBasicAuthenticator(htpasswd: Htpasswd, realm: string): Authenticator {
  return {
    challenge: `Basic realm="${realm.replace(/["\\]/g, '')}"`,
    authenticate(authorization) {
      if (!authorization) return ANONYMOUS_CALLER;
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
      const verified = htpasswd.verify(user, decoded.slice(colon + 1));
      return typeof verified === 'boolean' ? outcome(verified, user) : verified.then((ok) => outcome(ok, user));
    },
  };
}

/** No authentication configured: everyone is anonymous, and the open authorizer lets them in. */
export function createNoAuthenticator(): Authenticator {
  return { challenge: '', authenticate: () => ANONYMOUS_CALLER };
}
