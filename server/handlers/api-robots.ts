// Robot accounts under /api/v1/projects/<project>/robots: created, listed and revoked by the
// project's admins (and registry admins). The secret is in the creation's answer and nowhere else.
import * as z from 'zod';
import { parseRobotAccount, ROBOT_ROLES, type Robot } from '../../auth/robots.js';
import { isValidRobotName } from '../../storage/oci-grammar.js';
import { capture, emptyResponse, requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { OciError } from '../errors.js';
import { readJsonBody } from '../request-body.js';

const PROJECT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const DAY_MS = 86_400_000;

// Strict: a misspelt field is refused, not ignored. `expiresInDays: null` never expires (as
// Harbor's -1); it must be said, so that no robot lives for ever by omission.
const CREATE_BODY = z.strictObject({
  name: z.string(),
  role: z.enum(ROBOT_ROLES as ['guest', 'developer', 'maintainer']),
  expiresInDays: z.union([z.int().min(1).max(3650), z.null()]),
});

function requireProject(untrusted: string): string {
  if (untrusted.length > 255 || !PROJECT_RE.test(untrusted))
    throw new OciError('NAME_INVALID', 'invalid project name', { name: untrusted });
  return untrusted;
}

function robotJson(robot: Robot): Record<string, unknown> {
  return {
    name: robot.account,
    project: robot.project,
    role: robot.role,
    expiresAt: robot.expiresAt?.toISOString() ?? null,
    createdAt: robot.createdAt.toISOString(),
    createdBy: robot.createdBy ?? null,
    lastUsedAt: robot.lastUsedAt?.toISOString() ?? null,
  };
}

/** `ci` or `robot$team+ci` (of this project) from the URL. */
function robotName(project: string, untrusted: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(untrusted);
  } catch {
    throw new OciError('REQUEST_INVALID', 'invalid robot name');
  }
  const parsed = parseRobotAccount(decoded);
  if (parsed && parsed.project !== project) throw new OciError('REQUEST_INVALID', `${decoded} is not a robot of project ${project}`);
  const name = parsed ? parsed.name : decoded;
  if (!isValidRobotName(name)) throw new OciError('REQUEST_INVALID', 'invalid robot name');
  return name;
}

export function createRobotHandlers(deps: Pick<RegistryDeps, 'robots' | 'authorizer' | 'projects'>) {
  const { robots } = deps;
  return {
    async list(ctx: Ctx): Promise<void> {
      const project = requireProject(capture(ctx, 0));
      await requireAccess(ctx, deps, 'admin', project);
      jsonBody(ctx, { robots: (await robots.list(project)).map(robotJson) });
    },

    async create(ctx: Ctx): Promise<void> {
      const project = requireProject(capture(ctx, 0));
      await requireAccess(ctx, deps, 'admin', project);
      const body = await readJsonBody(ctx, CREATE_BODY);
      if (!isValidRobotName(body.name)) {
        throw new OciError(
          'REQUEST_INVALID',
          'invalid robot name: lower-case letters, digits and single separators (. _ __ -), at most 64',
          { name: body.name },
        );
      }
      const expiresAt = body.expiresInDays === null ? undefined : new Date(Date.now() + body.expiresInDays * DAY_MS);
      const created = await robots.create(project, body.name, body.role, expiresAt, ctx.state.principal.user);
      if (!created) {
        if (!(await deps.projects.find(project))) throw new OciError('NAME_UNKNOWN', `project ${project} not found`, { project });
        throw new OciError('CONFLICT', `project ${project} already has a robot named ${body.name}`, { robot: body.name });
      }
      ctx.state.log.info({ project, robot: created.robot.account, role: body.role }, 'robot account created');
      ctx.set('Location', `/api/v1/projects/${project}/robots/${body.name}`);
      ctx.set('Cache-Control', 'no-store');
      ctx.status = 201;
      jsonBody(ctx, { ...robotJson(created.robot), secret: created.secret });
    },

    async revoke(ctx: Ctx): Promise<void> {
      const project = requireProject(capture(ctx, 0));
      await requireAccess(ctx, deps, 'admin', project);
      const name = robotName(project, capture(ctx, 1));
      if (!(await robots.revoke(project, name, ctx.state.principal.user))) {
        throw new OciError('NAME_UNKNOWN', `project ${project} has no robot named ${name}`, { robot: name });
      }
      ctx.state.log.info({ project, robot: name }, 'robot account revoked');
      emptyResponse(ctx, 204);
    },
  };
}
