// The console's sign-in: GET /api/v1/session (who the browser is, and the CSRF token its writes
// send), POST /api/v1/session {user, password} (checked as Basic credentials are, against
// htpasswd; answered with an HttpOnly, SameSite=Strict cookie, Secure under TLS) and DELETE
// /api/v1/session (signing out, on every replica: the session row is removed).
import { z } from 'zod';
import type { Ctx, RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { readJsonBody } from '../request-body.js';
import { SESSION_COOKIE, SESSION_COOKIE_PATH, sessionCookieOf } from '../console-session.js';

const SIGN_IN_BODY = z.strictObject({ user: z.string().min(1).max(255), password: z.string().max(1024) });

export function createSessionHandlers(deps: Pick<RegistryDeps, 'sessions' | 'authenticator' | 'config'>) {
  const { sessions, authenticator, config } = deps;
  const authEnabled = config.auth.htpasswd !== undefined;
  const isAdmin = (user: string | undefined): boolean => !authEnabled || (user !== undefined && config.auth.admins.includes(user));
  const cookieOptions = (expires: Date) => ({
    path: SESSION_COOKIE_PATH,
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: config.http.tls !== undefined,
    expires,
    overwrite: true,
  });

  /** A sign-in form posted from another site must not sign the browser in (login CSRF). */
  function requireSameOrigin(ctx: Ctx): void {
    // Hosts compared, not schemes: behind a proxy that ends TLS the registry itself sees http.
    const origin = ctx.get('Origin');
    if (!origin) return;
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host !== ctx.host) throw new OciError('DENIED', 'sign-in from another origin is refused');
  }

  return {
    async get(ctx: Ctx): Promise<void> {
      const user = ctx.state.principal.user;
      const id = sessionCookieOf(ctx);
      const session = user !== undefined && id ? await sessions.find(id) : undefined;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = {
        authEnabled,
        ...(user !== undefined ? { user } : {}),
        admin: isAdmin(user),
        ...(session && session.user === user ? { csrfToken: session.csrfToken, expiresAt: session.expiresAt.toISOString() } : {}),
      };
    },

    async signIn(ctx: Ctx): Promise<void> {
      requireSameOrigin(ctx);
      if (!authEnabled) throw new OciError('UNSUPPORTED', 'authentication is off on this registry: there is nothing to sign in to');
      const { user, password } = await readJsonBody(ctx, SIGN_IN_BODY);
      const header = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      // A connection object of its own: a sign-in is never answered from another request's check.
      const answer = await authenticator.authenticate(header, {});
      if (!answer.ok || answer.principal.user !== user) {
        ctx.state.log.info({ user }, 'console sign-in refused');
        throw new OciError('UNAUTHORIZED', 'invalid username or password');
      }
      const tag = await authenticator.credentialTag(user);
      if (tag === undefined) throw new OciError('UNAUTHORIZED', 'invalid username or password');
      const { id, session } = await sessions.create(user, tag, config.console.sessionttl * 1000);
      ctx.cookies.set(SESSION_COOKIE, id, cookieOptions(session.expiresAt));
      ctx.state.log.info({ user }, 'console sign-in');
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { authEnabled, user, admin: isAdmin(user), csrfToken: session.csrfToken, expiresAt: session.expiresAt.toISOString() };
    },

    async signOut(ctx: Ctx): Promise<void> {
      const id = sessionCookieOf(ctx);
      if (id) await sessions.remove(id);
      ctx.cookies.set(SESSION_COOKIE, '', cookieOptions(new Date(0)));
      ctx.body = null;
      ctx.status = 204;
    },
  };
}
