// Console sessions on requests: the browser's session cookie is honoured on the management API
// only (never on /v2 or the lookaside, which clients reach with Basic credentials), and only when
// the request carries no Authorization header. A write made with the cookie must carry the
// session's CSRF token in X-CSRF-Token (a forged form or cross-site fetch cannot read it), on top
// of the cookie being SameSite=Strict.
//
// Robot accounts sign in too (with `robot$project+name` and their secret), into a read-only
// session: its principal is the robot's, marked `readOnly`, which the authorizer lets read the
// robot's own project and nothing else (auth/authorize.ts, checkRobotSession). The session
// remembers the robot's row id instead of an htpasswd entry's tag, and every request asks the
// robot accounts whether that robot still exists and has not expired (answered from a cache that
// every replica drops when the project's robots change): a robot revoked, or deleted and made
// again under its name, loses its session on its next request.
import { timingSafeEqual } from 'node:crypto';
import type { Authenticator } from '../auth/authenticator.js';
import type { Principal } from '../auth/authorize.js';
import { parseRobotAccount, type Robots } from '../auth/robots.js';
import type { Session, SessionStore } from '../storage/session-store.js';
import type { Ctx } from './context.js';
import { OciError } from './errors.js';

export const SESSION_COOKIE = 'signet_session';
/** The cookie goes to the management API only. */
export const SESSION_COOKIE_PATH = '/api/v1';
/** Sent by the console with every request: 401s then carry no Basic challenge (no browser prompt). */
export const CONSOLE_HEADER = 'X-Signet-Console';
const CSRF_HEADER = 'X-CSRF-Token';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function sessionCookieOf(ctx: Ctx): string | undefined {
  const value = ctx.cookies.get(SESSION_COOKIE);
  return value && /^[A-Za-z0-9_-]{20,100}$/.test(value) ? value : undefined;
}

function sameToken(expected: string, untrusted: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(untrusted);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface SessionAuthentication {
  /** The principal of a live session cookie, for a request that carries no Authorization header. */
  principalOf(ctx: Ctx): Promise<Principal | undefined>;
}

const ROBOT_TAG_PREFIX = 'robot:';

/** What a robot's session keeps in place of a credentials tag: the robot's row id. */
export function robotSessionTag(id: number): string {
  return `${ROBOT_TAG_PREFIX}${id}`;
}

/** The read-only principal of a robot's session, if the robot is still there and unexpired. */
async function robotSessionPrincipal(robots: Pick<Robots, 'current'>, session: Session): Promise<Principal | undefined> {
  if (!session.credentialTag.startsWith(ROBOT_TAG_PREFIX)) return undefined;
  const id = Number(session.credentialTag.slice(ROBOT_TAG_PREFIX.length));
  if (!Number.isSafeInteger(id)) return undefined;
  const robot = (await robots.current(session.user, id))?.robot;
  return robot && Object.freeze({ user: session.user, robot: Object.freeze({ ...robot, readOnly: true }) });
}

export function createSessionAuthentication(
  sessions: Pick<SessionStore, 'find'>,
  authenticator: Pick<Authenticator, 'credentialTag'>,
  robots: Pick<Robots, 'current'>,
): SessionAuthentication {
  return {
    async principalOf(ctx) {
      if (!ctx.path.startsWith(`${SESSION_COOKIE_PATH}/`)) return undefined;
      const id = sessionCookieOf(ctx);
      if (!id) return undefined;
      const session: Session | undefined = await sessions.find(id);
      if (!session) return undefined;
      let principal: Principal | undefined;
      if (parseRobotAccount(session.user)) {
        // Revoked or expired since sign-in: the session is over.
        principal = await robotSessionPrincipal(robots, session);
      } else if ((await authenticator.credentialTag(session.user)) === session.credentialTag) {
        // (A password changed or a user removed from htpasswd since sign-in ends the session.)
        principal = Object.freeze({ user: session.user });
      }
      if (!principal) return undefined;
      if (!SAFE_METHODS.has(ctx.method)) {
        const untrusted = ctx.get(CSRF_HEADER);
        if (!untrusted || !sameToken(session.csrfToken, untrusted)) {
          throw new OciError('DENIED', 'a console write needs the X-CSRF-Token of its session; reload the console', { csrf: true });
        }
      }
      return principal;
    },
  };
}
