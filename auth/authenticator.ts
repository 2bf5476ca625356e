// Who is calling: HTTP Basic credentials checked against htpasswd. No credentials means anonymous
// (the authorizer decides what anonymous callers may do); wrong credentials are refused outright.
import type { Htpasswd } from './htpasswd.js';
import { ANONYMOUS, type Principal } from './authorize.js';

export type Authentication = { ok: true; principal: Principal } | { ok: false };

export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Authentication>;
  /** The WWW-Authenticate challenge for 401 answers. */
  readonly challenge: string;
}

export function createBasicAuthenticator(htpasswd: Htpasswd, realm: string): Authenticator {
  return {
    challenge: `Basic realm="${realm.replace(/["\\]/g, '')}"`,
    async authenticate(authorization) {
      if (!authorization) return { ok: true, principal: ANONYMOUS };
      const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
      if (!match) return { ok: false };
      const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
      // containers/image (skopeo, podman) answers a Basic challenge with its credentials even when
      // it has none: `Basic Og==`, an empty user and password (docker/docker_client.go,
      // setupRequestAuth). That is an anonymous caller, not a failed login; without this, anonymous
      // pulls from public projects fail with 401 for every containers/image client.
      if (decoded === ':') return { ok: true, principal: ANONYMOUS };
      const colon = decoded.indexOf(':');
      if (colon <= 0) return { ok: false };
      const user = decoded.slice(0, colon);
      if (!(await htpasswd.verify(user, decoded.slice(colon + 1)))) return { ok: false };
      return { ok: true, principal: { user } };
    },
  };
}

/** No authentication configured: everyone is anonymous, and the open authorizer lets them in. */
export function createNoAuthenticator(): Authenticator {
  return { challenge: '', authenticate: async () => ({ ok: true, principal: ANONYMOUS }) };
}
