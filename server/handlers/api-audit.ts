// GET /api/v1/projects/<p>/audit[?n=50&before=<id>]: the project's audit log, newest first, to its
// members (and registry admins): who changed settings, members and trusted keys, and when.
import { capture, queryParam, requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { OciError } from '../errors.js';
import { requireProject } from './api-keys.js';

export function createAuditHandler(deps: Pick<RegistryDeps, 'audit' | 'projects' | 'authorizer'>) {
  return async (ctx: Ctx): Promise<void> => {
    const project = capture(ctx, 0);
    await requireAccess(ctx, deps, 'view', project);
    await requireProject(deps.projects, project);
    const n = queryParam(ctx, 'n') ?? '50';
    const before = queryParam(ctx, 'before');
    if (!/^\d{1,3}$/.test(n) || Number(n) < 1 || Number(n) > 500) throw new OciError('QUERY_PARAMETER_INVALID', 'n must be 1 to 500');
    if (before !== undefined && !/^\d{1,15}$/.test(before)) throw new OciError('QUERY_PARAMETER_INVALID', 'before must be an entry id');
    const limit = Number(n);
    const entries = await deps.audit.list(project, { limit: limit + 1, ...(before ? { before: Number(before) } : {}) });
    const page = entries.slice(0, limit);
    jsonBody(ctx, {
      entries: page.map((e) => ({
        id: e.id,
        at: e.at.toISOString(),
        ...(e.actor ? { actor: e.actor } : {}),
        action: e.action,
        detail: e.detail,
      })),
      ...(entries.length > limit ? { next: page[page.length - 1]!.id } : {}),
    });
  };
}
