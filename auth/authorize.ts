// Who may do what to which repository. Handlers ask before they look anything up, so an
// unauthorized caller learns nothing about existence.
//
// The first path component of a repository is its project (`library/busybox` → `library`), as in
// Harbor. Roles, each including the ones before it: guest (pull), developer (push), maintainer
// (delete, manage signatures), admin (project settings and members). Registry-wide admins may do
// everything. Anonymous callers may pull from public projects only.
import type { Project, ProjectStore, Role } from '../storage/project-store.js';
import type { RobotRole } from '../storage/robot-store.js';
import type { Action } from './actions.js';
import { tokenActionFor, type TokenGrants } from './token-scope.js';

export type { Action } from './actions.js';

export interface Principal {
  /** Undefined for an anonymous caller. */
  user?: string;
  /**
   * A robot account (`robot$<project>+<name>`): its role in its own project, and nothing else.
   * `readOnly`: signed in to the console, where it may only read its own project (checkRobot).
   */
  robot?: { id: number; project: string; role: RobotRole; readOnly?: boolean };
  /**
   * Set when the caller presented a bearer token: what the token grants. The token narrows what
   * the caller may do (its roles are still checked on every request); absent for Basic credentials.
   */
  grants?: TokenGrants;
}

export const ANONYMOUS: Principal = Object.freeze({});

export interface AccessDecision {
  allowed: boolean;
  /** For refusals: what to tell the caller (never more than they may know). */
  reason?: string;
  /**
   * The caller may do this, but the bearer token presented does not grant it: the client should
   * ask the token service for a token with the scope (401 `insufficient_scope`, not 403).
   */
  insufficientScope?: boolean;
}

export interface CheckOptions {
  /**
   * Only asking whether the caller may (the token service deciding what a token grants): answered
   * as for the request, but nothing is created. A push that would create its project (autocreate)
   * is allowed, and creates it when the push itself comes: a token request writes nothing.
   */
  dryRun?: boolean;
}

export interface Authorizer {
  /** `target` is a repository name or a project name. */
  check(principal: Principal, action: Action, target: string, options?: CheckOptions): Promise<AccessDecision>;
}

const ALLOW: AccessDecision = { allowed: true };
const RANK: Record<Role, number> = { guest: 1, developer: 2, maintainer: 3, admin: 4 };
const NEEDED: Record<Exclude<Action, 'create' | 'maintain'>, Role> = {
  pull: 'guest',
  view: 'guest',
  push: 'developer',
  delete: 'maintainer',
  sign: 'maintainer',
  admin: 'admin',
};

/**
 * Pushes into a mirror project are refused for everyone, registry admins included: its content is
 * the upstream's, written only by the mirror itself (which does not go through HTTP).
 */
function mirrorRefusal(project: Project | undefined, target: string): AccessDecision | undefined {
  if (!project?.mirror) return undefined;
  return {
    allowed: false,
    reason: `push to ${target} denied: project ${project.name} mirrors ${project.mirror.upstream} and takes no pushes; push to the upstream, or copy with "signet mirror run ${project.name}"`,
  };
}

export function projectOf(repository: string): string {
  const slash = repository.indexOf('/');
  return slash < 0 ? repository : repository.slice(0, slash);
}

/**
 * No authentication configured: every caller may do everything (as `registry:2` without auth).
 * A push into a project that does not exist creates it (private, no members), so that every
 * repository has a project: listed by `signet project list`, with settings, quota and keys, and
 * closed to all but registry admins should authentication be turned on later.
 */
export function createOpenAuthorizer(projects: ProjectStore): Authorizer {
  return {
    async check(_principal, action, target, options) {
      if (action === 'push') {
        const name = projectOf(target);
        const project = await projects.find(name);
        if (!project && !options?.dryRun) await projects.create(name, { public: false });
        return mirrorRefusal(project, target) ?? ALLOW;
      }
      return ALLOW;
    },
  };
}

export interface ProjectAuthorizerOptions {
  projects: ProjectStore;
  admins: ReadonlySet<string>;
  /** Pushing into a missing project creates it, with the pusher as its admin. */
  autocreate: boolean;
}

export function createProjectAuthorizer(options: ProjectAuthorizerOptions): Authorizer {
  const { projects, admins, autocreate } = options;
  /**
   * A robot may do what its role allows in its own project, and pull from public projects as
   * anyone may; it never creates projects (autocreate included) or runs maintenance, and its name
   * never counts as a registry admin's or a member's elsewhere. Nor does it `view`, whatever its
   * role, with its secret as in its console session: members and the audit log are the project's
   * people and history, and a robot is a CI credential, not a member.
   */
  async function checkRobot(robot: NonNullable<Principal['robot']>, action: Action, target: string): Promise<AccessDecision> {
    if (robot.readOnly) return checkRobotSession(robot, action, target);
    if (action === 'create' || action === 'maintain')
      return { allowed: false, reason: `robot accounts may not ${action === 'create' ? 'create projects' : 'run maintenance'}` };
    if (action === 'view') {
      return { allowed: false, reason: `robot accounts do not see members or the audit log of project ${projectOf(target)}` };
    }
    const name = projectOf(target);
    if (name === robot.project && RANK[robot.role] >= RANK[NEEDED[action]] && (await projects.find(name))) return ALLOW;
    if (action === 'pull' && (await projects.find(name))?.public) return ALLOW;
    return {
      allowed: false,
      reason: `${action} on ${target} denied: this robot account is a ${robot.role} in project ${robot.project} only`,
    };
  }

  /**
   * A robot signed in to the console (server/console-session.ts). A robot is a machine credential:
   * its console session exists so that a person holding it can see what the CI pushes, and
   * nothing more. So whatever its role, the session reads its own project only (repositories,
   * tags, signatures, trust state, keys: `pull`), and is refused everything else: writes (its role
   * still writes through /v2 with its secret, never with a browser cookie), public projects
   * elsewhere (not what its grant covers), and `view` (members and the audit log, which are the
   * project's people and history, not its content).
   */
  async function checkRobotSession(robot: NonNullable<Principal['robot']>, action: Action, target: string): Promise<AccessDecision> {
    const name = projectOf(target);
    if (action === 'pull' && name === robot.project && (await projects.find(name))) return ALLOW;
    return {
      allowed: false,
      reason: `${action} on ${target || 'the registry'} denied: a robot account's console session only reads project ${robot.project}`,
    };
  }

  return {
    async check(principal, action, target, options) {
      if (principal.robot) return checkRobot(principal.robot, action, target);
      const user = principal.user;
      const name = projectOf(target);
      if (action === 'push') {
        const refusal = mirrorRefusal(await projects.find(name), target);
        if (refusal) return refusal;
      }
      // A registry admin may do anything, in projects that exist: a push of theirs into a missing
      // one is refused as anyone's is (or, with autocreate, creates it), so no repository is left
      // that no project owns.
      if (user !== undefined && admins.has(user) && (action !== 'push' || (await projects.find(name)))) return ALLOW;
      if (action === 'maintain') return { allowed: false, reason: 'only registry administrators run maintenance' };
      if (action === 'create') {
        return user !== undefined && autocreate ? ALLOW : { allowed: false, reason: 'only registry administrators create projects' };
      }
      const project = await projects.find(name);
      if (!project && user !== undefined && autocreate) {
        if (action === 'push') {
          if (!options?.dryRun) await projects.create(name, { public: false, actor: user, admin: user });
          return ALLOW;
        }
        // What a token may grant, where the caller's push would create the project: what its
        // admin may. docker asks `pull,push` for a push and reads the config blob back (HEAD)
        // with the same token once the layers' uploads created the project. Every request is
        // still checked against the project as it is then: nothing is read before it exists.
        if (options?.dryRun && (action === 'pull' || action === 'delete')) return ALLOW;
      }
      if (!project && action === 'push' && user !== undefined && admins.has(user)) {
        return {
          allowed: false,
          reason: `push to ${target} denied: project ${name} does not exist; create it first with "signet project create ${name}"`,
        };
      }
      if (project && action === 'pull' && project.public) return ALLOW;
      const role = project && user !== undefined ? project.members.get(user) : undefined;
      if (role && RANK[role] >= RANK[NEEDED[action]]) return ALLOW;
      // The same words whether or not the project exists, so refusals do not reveal it.
      if (action === 'push') {
        return {
          allowed: false,
          reason: `push to ${target} denied: project ${name} does not exist or you are not a developer in it; a registry admin creates projects with "signet project create ${name}"`,
        };
      }
      return { allowed: false, reason: `${action} on ${target} denied` };
    },
  };
}

/**
 * Checks a bearer token's grants on top of `inner`: the caller must both be allowed (roles are
 * read on every request, so a role taken away counts at once, whatever tokens are out) and hold a
 * token granting the action. A caller allowed but without the grant is told so apart
 * (`insufficientScope`): the client then asks the token service for the scope and retries.
 *
 * The grants are read first, and `inner` asked for real only when they cover the action: a push
 * with a token that does not grant it must not create the project (autocreate) before it is
 * refused. Tokens are for /v2 and the signature routes only; server/routes.ts refuses them on the
 * management API before any of this, where targets are project names.
 */
export function withTokenGrants(inner: Authorizer): Authorizer {
  return {
    async check(principal, action, target, options) {
      const grants = principal.grants;
      if (grants === undefined) return inner.check(principal, action, target, options);
      const needed = tokenActionFor(action);
      if (needed !== undefined && grants.allows(needed, target)) return inner.check(principal, action, target, options);
      const decision = await inner.check(principal, action, target, { ...options, dryRun: true });
      if (!decision.allowed) return decision;
      if (needed === undefined) {
        return { allowed: false, reason: 'a bearer token grants registry access only; the management API takes Basic credentials' };
      }
      return { allowed: false, insufficientScope: true, reason: `the token presented does not grant ${needed} on ${target}` };
    },
  };
}
