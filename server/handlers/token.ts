// The token service's endpoint (token mode): the distribution token specification's
// `GET /token?service=...&scope=...` with Basic credentials or none, and its OAuth2 form, `POST
// /token` with `grant_type=password` (containerd, ctr) or `grant_type=refresh_token` (docker after
// `docker login`, which stores the refresh token as its identity token). The answer holds what the
// caller's roles allow of each scope asked for, and nothing for the rest: a refusal is a token
// without the action, and the registry's 401 or 403 tells the client.
import type { Principal } from '../../auth/authorize.js';
import { formatScope, parseScopes, type ScopeRequest } from '../../auth/token-scope.js';
import type { TokenService } from '../../auth/tokens.js';
import { jsonBody, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { readBody } from '../request-body.js';

/** A POST form is a few scopes and credentials: 64 KiB is plenty. */
const FORM_LIMIT = 64 * 1024;

function scopesOf(values: readonly string[]): ScopeRequest[] {
  try {
    return parseScopes(values);
  } catch (err) {
    throw new OciError('REQUEST_INVALID', (err as Error).message);
  }
}

function requireService(tokens: TokenService, untrusted: string | undefined): void {
  // Absent: ours is meant (some clients send none). Another one: a token for it would be refused here.
  if (untrusted !== undefined && untrusted !== '' && untrusted !== tokens.service) {
    throw new OciError('REQUEST_INVALID', `this token service issues tokens for service "${tokens.service}", not "${untrusted}"`, {
      service: untrusted,
    });
  }
}

const asList = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

export function createTokenHandlers(deps: Pick<RegistryDeps, 'tokens' | 'authenticator'>) {
  const service = (): TokenService => {
    if (!deps.tokens) throw new OciError('NOT_FOUND', 'no such endpoint: token authentication is off (REGISTRY_AUTH=token turns it on)');
    return deps.tokens;
  };
  const noStore = (ctx: Ctx): void => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
  };

  /** Basic credentials (user or robot) given in a form, checked as the Authorization header would be. */
  async function login(username: string, password: string): Promise<Principal> {
    const header = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    const result = await deps.authenticator.authenticate(header, {});
    if (!result.ok || result.principal.user === undefined) {
      throw new OciError('UNAUTHORIZED', 'invalid username or password', undefined, { basic: true });
    }
    return result.principal;
  }

  return {
    async get(ctx: Ctx): Promise<void> {
      const tokens = service();
      const principal = ctx.state.principal;
      // A token is never exchanged for another: a leaked pull token must not become a push token.
      if (principal.grants)
        throw new OciError('UNAUTHORIZED', 'the token service takes Basic credentials or none, not a token', undefined, { basic: true });
      requireService(tokens, asList(ctx.query.service)[0]);
      const scopes = scopesOf(asList(ctx.query.scope));
      const refresh = asList(ctx.query.offline_token)[0] === 'true';
      const issued = await tokens.issue(principal, scopes, { refresh });
      noStore(ctx);
      jsonBody(ctx, {
        token: issued.token,
        access_token: issued.token,
        expires_in: issued.expiresIn,
        issued_at: issued.issuedAt.toISOString(),
        ...(issued.refreshToken ? { refresh_token: issued.refreshToken } : {}),
      });
    },

    async post(ctx: Ctx): Promise<void> {
      const tokens = service();
      if (!ctx.is('application/x-www-form-urlencoded')) {
        throw new OciError('REQUEST_INVALID', 'expected an application/x-www-form-urlencoded body (OAuth2 token request)');
      }
      const form = new URLSearchParams((await readBody(ctx, { limit: FORM_LIMIT })).toString('utf8'));
      requireService(tokens, form.get('service') ?? undefined);
      const scopes = scopesOf(form.getAll('scope'));
      let principal: Principal;
      let refresh = false;
      switch (form.get('grant_type')) {
        case 'password': {
          const username = form.get('username') ?? '';
          if (username === '') throw new OciError('REQUEST_INVALID', 'the password grant needs a username');
          principal = await login(username, form.get('password') ?? '');
          refresh = form.get('access_type') === 'offline';
          break;
        }
        case 'refresh_token': {
          const redeemed = await tokens.redeem(form.get('refresh_token') ?? '');
          if (!redeemed) {
            throw new OciError(
              'UNAUTHORIZED',
              'the refresh token is invalid or has expired, or its account has changed; log in again',
              undefined,
              { basic: true },
            );
          }
          principal = redeemed;
          break;
        }
        default:
          throw new OciError('REQUEST_INVALID', 'unsupported grant_type: expected password or refresh_token', {
            grant_type: form.get('grant_type'),
          });
      }
      const issued = await tokens.issue(principal, scopes, { refresh });
      noStore(ctx);
      jsonBody(ctx, {
        access_token: issued.token,
        token: issued.token,
        scope: issued.access.map(formatScope).join(' '),
        expires_in: issued.expiresIn,
        issued_at: issued.issuedAt.toISOString(),
        ...(issued.refreshToken ? { refresh_token: issued.refreshToken } : {}),
      });
    },
  };
}
