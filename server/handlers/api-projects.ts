// The management API under /api/v1: projects, members, and what a project holds. Same
// authentication and the same {"errors":[...]} shape as the registry API.
import * as z from 'zod';
import { ROBOT_PREFIX } from '../../auth/robots.js';
import { ROLES, type Project } from '../../storage/project-store.js';
import { allowed, capture, emptyResponse, queryParam, requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { OciError } from '../errors.js';
import { isValidName, isValidProjectName } from '../../storage/oci-grammar.js';
import { readJsonBody } from '../request-body.js';
import { MIRROR_BODY, mirrorJson, mirrorSettings } from '../mirror-body.js';
import { lastParam } from '../pagination.js';

// htpasswd user names: no blank, no colon, no control character (PostgreSQL text cannot hold NUL).
const USER_RE = /^[^\s:\p{Cc}]{1,255}$/u;

function requireProjectName(untrusted: string): string {
  if (!isValidProjectName(untrusted)) {
    throw new OciError('NAME_INVALID', 'invalid project name: lower-case letters, digits and single separators (. _ __ -)', {
      name: untrusted,
    });
  }
  return untrusted;
}

// The bodies the API takes. Strict: an unknown field (a misspelt `signedOnly`) is refused, not
// silently ignored.
const CREATE_BODY = z.strictObject({ name: z.string(), public: z.boolean().optional(), mirror: MIRROR_BODY.optional() });
const UPDATE_BODY = z.strictObject({
  /** null: the project stops mirroring (what it cached stays). */
  mirror: z.union([MIRROR_BODY, z.null()]).optional(),
  public: z.boolean().optional(),
  signedOnly: z.boolean().optional(),
  /** null removes the quota. */
  quotaBytes: z.union([z.int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.null()]).optional(),
});
const MEMBER_BODY = z.strictObject({ role: z.enum(ROLES) });

/** A user name from the URL (percent-encoded by clients); a malformed escape is a bad name. */
function userFromPath(untrusted: string): string {
  let user: string;
  try {
    user = decodeURIComponent(untrusted);
  } catch {
    throw new OciError('REQUEST_INVALID', 'invalid user name');
  }
  if (!USER_RE.test(user)) throw new OciError('REQUEST_INVALID', 'invalid user name');
  return user;
}

/**
 * A project as the caller may see it. Its members (`member`: the caller may see them) also see
 * who created it and its mirror settings; anyone else who may pull (anonymous callers of a public
 * project) does not: user names, an upstream's internal address and its sync rules are not theirs
 * to read (adversarial testing).
 */
function projectJson(project: Project, member: boolean, listMembers = member): Record<string, unknown> {
  return {
    name: project.name,
    public: project.public,
    signedOnly: project.signedOnly,
    quotaBytes: project.quotaBytes,
    createdAt: project.createdAt.toISOString(),
    ...(member && project.createdBy ? { createdBy: project.createdBy } : {}),
    ...(member && project.mirror ? { mirror: mirrorJson(project.mirror) } : {}),
    ...(listMembers ? { members: [...project.members].map(([user, role]) => ({ user, role })) } : {}),
  };
}

/**
 * Mirror settings make the server send requests to a URL of the setter's choosing (and with
 * stored credentials): registry administrators' business, as quotas are, never a project admin's.
 */
function mirrorDenied(project: string): OciError {
  return new OciError('DENIED', 'only registry administrators set mirror settings: they make the registry send requests to the upstream', {
    project,
  });
}

export function createProjectApiHandlers(deps: Pick<RegistryDeps, 'projects' | 'metadata' | 'config' | 'authorizer'>) {
  const { projects, metadata } = deps;
  const actor = (ctx: Ctx): string | undefined => ctx.state.principal.user;
  /** Without authentication every caller is one (as every caller may do everything). */
  const isRegistryAdmin = (ctx: Ctx): boolean => {
    const user = actor(ctx);
    if (!deps.config.auth.htpasswd) return true;
    // A robot never is one, whatever REGISTRY_AUTH_ADMINS lists (as the authorizer decides).
    return ctx.state.principal.robot === undefined && user !== undefined && deps.config.auth.admins.includes(user);
  };

  /** Loads a project the caller may see; invisible and missing look the same. */
  async function visibleProject(ctx: Ctx, name: string): Promise<Project> {
    await requireAccess(ctx, deps, 'pull', name);
    const project = await projects.find(name);
    if (!project) throw new OciError('NAME_UNKNOWN', `project ${name} not found`, { project: name });
    return project;
  }

  return {
    async list(ctx: Ctx): Promise<void> {
      // ?details=1 (the console): each project's repository count and storage use as well.
      const details = queryParam(ctx, 'details') === '1';
      const visible: Record<string, unknown>[] = [];
      for (const project of await projects.list()) {
        if (!(await allowed(ctx, deps, 'pull', project.name))) continue;
        const extra = details
          ? {
              repositoryCount: (await metadata.repositories.list({ project: project.name, limit: 100_000 })).length,
              usedBytes: (await projects.usage(project.name)).usedBytes,
            }
          : {};
        visible.push({ ...projectJson(project, await allowed(ctx, deps, 'view', project.name), false), ...extra });
      }
      jsonBody(ctx, { projects: visible });
    },

    async create(ctx: Ctx): Promise<void> {
      const body = await readJsonBody(ctx, CREATE_BODY);
      const name = requireProjectName(body.name);
      await requireAccess(ctx, deps, 'create', name);
      const isPublic = body.public ?? false;
      const user = actor(ctx);
      if (body.mirror && !isRegistryAdmin(ctx)) throw mirrorDenied(name);
      const mirror = body.mirror ? mirrorSettings(body.mirror) : undefined;
      if (
        !(await projects.create(name, { public: isPublic, ...(user ? { actor: user, admin: user } : {}), ...(mirror ? { mirror } : {}) }))
      ) {
        throw new OciError('CONFLICT', `project ${name} already exists`, { project: name });
      }
      // The upstream only: credentials are never logged.
      ctx.state.log.info({ project: name, public: isPublic, ...(mirror ? { upstream: mirror.upstream } : {}) }, 'project created');
      ctx.set('Location', `/api/v1/projects/${name}`);
      ctx.status = 201;
      jsonBody(ctx, projectJson((await projects.find(name))!, true));
    },

    async get(ctx: Ctx): Promise<void> {
      const project = await visibleProject(ctx, requireProjectName(capture(ctx, 0)));
      const { usedBytes } = await projects.usage(project.name);
      // What the caller may do here, so that a client (the console) offers only what will work.
      const entries = await Promise.all(
        (['push', 'delete', 'admin'] as const).map(async (action): Promise<[string, boolean]> => [
          action,
          await allowed(ctx, deps, action, project.name),
        ]),
      );
      const permissions = Object.fromEntries(entries);
      jsonBody(ctx, {
        ...projectJson(project, await allowed(ctx, deps, 'view', project.name)),
        usedBytes,
        permissions,
        registryAdmin: isRegistryAdmin(ctx),
      });
    },

    async update(ctx: Ctx): Promise<void> {
      const name = requireProjectName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'admin', name);
      const { public: isPublic, signedOnly, quotaBytes, mirror: mirrorBody } = await readJsonBody(ctx, UPDATE_BODY);
      // As in Harbor, quotas are the registry administrators' to set, not the project's.
      if (quotaBytes !== undefined && !isRegistryAdmin(ctx)) {
        throw new OciError('DENIED', 'only registry administrators set quotas', { project: name });
      }
      if (mirrorBody !== undefined && !isRegistryAdmin(ctx)) throw mirrorDenied(name);
      const changes = {
        ...(isPublic === undefined ? {} : { public: isPublic }),
        ...(signedOnly === undefined ? {} : { signedOnly }),
        ...(quotaBytes === undefined ? {} : { quotaBytes }),
      };
      const mirror =
        mirrorBody === undefined ? undefined : mirrorBody === null ? null : mirrorSettings(mirrorBody, (await projects.find(name))?.mirror);
      if (!(await projects.update(name, { ...changes, ...(mirror !== undefined ? { mirror } : {}) }, actor(ctx)))) {
        throw new OciError('NAME_UNKNOWN', `project ${name} not found`, { project: name });
      }
      // Mirror settings by their upstream only: credentials are never logged.
      ctx.state.log.info(
        { project: name, ...changes, ...(mirror !== undefined ? { upstream: mirror?.upstream ?? null } : {}) },
        'project updated',
      );
      jsonBody(ctx, projectJson((await projects.find(name))!, true));
    },

    async remove(ctx: Ctx): Promise<void> {
      const name = requireProjectName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'admin', name);
      // As Harbor: a project is deleted only once it holds no images.
      const held = await metadata.repositories.list({ project: name, limit: 1 });
      if (held.length > 0)
        throw new OciError('CONFLICT', `project ${name} still holds repositories; delete them first`, { repositories: held });
      // Its emptied repositories still link their blobs: a project created later under the name
      // (by another group, or by autocreate on anyone's push) could read the old layers by digest.
      await metadata.repositories.removeEmpty(name);
      if (!(await projects.remove(name, actor(ctx)))) throw new OciError('NAME_UNKNOWN', `project ${name} not found`);
      ctx.state.log.info({ project: name }, 'project deleted');
      emptyResponse(ctx, 204);
    },

    async members(ctx: Ctx): Promise<void> {
      const name = requireProjectName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'view', name);
      const project = await projects.find(name);
      if (!project) throw new OciError('NAME_UNKNOWN', `project ${name} not found`);
      jsonBody(ctx, { members: [...project.members].map(([user, role]) => ({ user, role })) });
    },

    async setMember(ctx: Ctx): Promise<void> {
      const name = requireProjectName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'admin', name);
      const user = userFromPath(capture(ctx, 1));
      // A robot's role is its own (signet robot create); it is never a member of any project.
      if (user.startsWith(ROBOT_PREFIX))
        throw new OciError(
          'REQUEST_INVALID',
          'robot accounts are not members: their role is set when they are created (signet robot create)',
        );
      const { role } = await readJsonBody(ctx, MEMBER_BODY);
      if (!(await projects.setMember(name, user, role, actor(ctx)))) throw new OciError('NAME_UNKNOWN', `project ${name} not found`);
      ctx.state.log.info({ project: name, member: user, role }, 'member set');
      jsonBody(ctx, { user, role });
    },

    async removeMember(ctx: Ctx): Promise<void> {
      const name = requireProjectName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'admin', name);
      const user = userFromPath(capture(ctx, 1));
      if (!(await projects.removeMember(name, user, actor(ctx)))) {
        throw new OciError('NAME_UNKNOWN', `${user} is not a member of ${name}`);
      }
      ctx.state.log.info({ project: name, member: user }, 'member removed');
      emptyResponse(ctx, 204);
    },

    async repositories(ctx: Ctx): Promise<void> {
      const project = await visibleProject(ctx, requireProjectName(capture(ctx, 0)));
      // ?q= keeps names containing it; ?n= and ?last= page (without n: every name, as before).
      const q = queryParam(ctx, 'q');
      const n = queryParam(ctx, 'n');
      const last = queryParam(ctx, 'last');
      if (n !== undefined && (!/^\d{1,5}$/.test(n) || Number(n) < 1))
        throw new OciError('QUERY_PARAMETER_INVALID', 'n must be a positive number');
      let names = await metadata.repositories.list({ project: project.name, limit: 100_000 });
      if (q) names = names.filter((name) => name.includes(q));
      const total = names.length;
      if (last) names = names.filter((name) => name > last);
      const limit = n === undefined ? names.length : Number(n);
      const page = names.slice(0, limit);
      jsonBody(ctx, {
        repositories: page.map((name) => ({ name })),
        total,
        ...(names.length > limit ? { next: page[page.length - 1] } : {}),
      });
    },

    async tags(ctx: Ctx): Promise<void> {
      const project = requireProjectName(capture(ctx, 0));
      const repository = `${project}/${capture(ctx, 1)}`;
      if (!isValidName(repository)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: repository });
      await requireAccess(ctx, deps, 'pull', repository);
      // ?n= and ?last= page, as tags/list does (without n: every tag, as before).
      const n = queryParam(ctx, 'n');
      if (n !== undefined && (!/^\d{1,5}$/.test(n) || Number(n) < 1))
        throw new OciError('QUERY_PARAMETER_INVALID', 'n must be a positive number');
      const last = lastParam(ctx);
      const limit = n === undefined ? 100_000 : Number(n);
      const listed = await metadata.tags.listDetailed(repository, {
        limit: n === undefined ? limit : limit + 1,
        ...(last ? { last } : {}),
      });
      if (!listed) throw new OciError('NAME_UNKNOWN', `repository ${repository} not found`);
      const tags = listed.slice(0, limit).map((t) => ({ name: t.name, digest: t.digest, pushedAt: t.updatedAt.toISOString() }));
      jsonBody(ctx, { name: repository, tags, ...(listed.length > limit ? { next: tags[tags.length - 1]!.name } : {}) });
    },
  };
}
