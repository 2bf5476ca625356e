// The console's sign-in: GET /api/v1/session (who the browser is, and the CSRF token its writes
// send), POST /api/v1/session {user, password} (checked as Basic credentials are: against
// htpasswd, or for `robot$project+name` against the robot accounts; answered with an HttpOnly,
// SameSite=Strict cookie, Secure under TLS) and DELETE /api/v1/session (signing out, on every
// replica: the session row is removed). A robot's session is read-only (server/console-session.ts).
import * as z from 'zod';
import type { Principal } from '../../auth/authorize.js';
import { ROBOT_PREFIX } from '../../auth/robots.js';
import { countRefusedPassword, jsonBody, refuseWhileGuessing, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { readJsonBody } from '../request-body.js';
import { robotSessionTag, SESSION_COOKIE, SESSION_COOKIE_PATH, sessionCookieOf } from '../console-session.js';

const SIGN_IN_BODY = z.strictObject({ user: z.string().min(1).max(255), password: z.string().max(1024) });

export function createSessionHandlers(deps: Pick<RegistryDeps, 'sessions' | 'authenticator' | 'robots' | 'config' | 'guesses'>) {
  const { sessions, authenticator, robots, config } = deps;
  const authEnabled = config.auth.htpasswd !== undefined;
  // A robot is never a registry admin, whatever REGISTRY_AUTH_ADMINS says (the authorizer agrees).
  const isAdmin = (principal: Principal): boolean =>
    !authEnabled || (principal.robot === undefined && principal.user !== undefined && config.auth.admins.includes(principal.user));
  /** What the console shows of a robot: its project and role, and whether it only reads (a session). */
  const robotJson = (principal: Principal, readOnly = principal.robot?.readOnly === true) =>
    principal.robot ? { robot: { project: principal.robot.project, role: principal.robot.role, readOnly } } : {};
  const cookieOptions = (expires: Date) => ({
    path: SESSION_COOKIE_PATH,
    httpOnly: true,
    sameSite: 'strict' as const,
    secure: config.http.tls !== undefined,
    expires,
    overwrite: true,
  });

  /** The principal the credentials are, if they are right: as Basic credentials are checked. */
  async function check(user: string, password: string): Promise<Principal | undefined> {
    // A robot is read from the database on every sign-in, not from the lookup cache that Basic
    // logins use: one query and one comparison whether the robot exists or not, and whether or
    // not its name was in use a moment ago, so the time of a sign-in tells nothing of either.
    if (user.startsWith(ROBOT_PREFIX)) return robots.verify(user, password, true);
    const header = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    // A connection object of its own: a sign-in is never answered from another request's check.
    const answer = await authenticator.authenticate(header, {});
    return answer.ok ? answer.principal : undefined;
  }

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
      const { principal } = ctx.state;
      const user = principal.user;
      const id = sessionCookieOf(ctx);
      const session = user !== undefined && id ? await sessions.find(id) : undefined;
      ctx.set('Cache-Control', 'no-store');
      jsonBody(ctx, {
        authEnabled,
        ...(user !== undefined ? { user } : {}),
        admin: isAdmin(principal),
        ...robotJson(principal),
        ...(session && session.user === user ? { csrfToken: session.csrfToken, expiresAt: session.expiresAt.toISOString() } : {}),
      });
    },

    async signIn(ctx: Ctx): Promise<void> {
      requireSameOrigin(ctx);
      if (!authEnabled) throw new OciError('UNSUPPORTED', 'authentication is off on this registry: there is nothing to sign in to');
      const { user, password } = await readJsonBody(ctx, SIGN_IN_BODY);
      // The same bound on guessing as Basic credentials have (server/app.ts): robots' secrets
      // are not guessable and are not counted.
      const counted = !user.startsWith(ROBOT_PREFIX);
      if (counted) refuseWhileGuessing(ctx, deps.guesses, user);
      const principal = await check(user, password);
      if (principal?.user !== user) {
        if (counted) countRefusedPassword(ctx, deps.guesses, user);
        ctx.state.log.info({ user }, 'console sign-in refused');
        throw new OciError('UNAUTHORIZED', 'invalid username or password');
      }
      // A robot's session is tied to the robot's row (revoked, or made again: another robot);
      // a person's to their htpasswd entry (a password changed ends it).
      const tag = principal.robot ? robotSessionTag(principal.robot.id) : await authenticator.credentialTag(user);
      if (tag === undefined) throw new OciError('UNAUTHORIZED', 'invalid username or password');
      const { id, session } = await sessions.create(user, tag, config.console.sessionttl * 1000);
      ctx.cookies.set(SESSION_COOKIE, id, cookieOptions(session.expiresAt));
      ctx.state.log.info({ user }, 'console sign-in');
      ctx.set('Cache-Control', 'no-store');
      jsonBody(ctx, {
        authEnabled,
        user,
        admin: isAdmin(principal),
        ...robotJson(principal, true),
        csrfToken: session.csrfToken,
        expiresAt: session.expiresAt.toISOString(),
      });
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
