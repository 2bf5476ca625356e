// GET / POST /api/v1/projects/<p>/keys, DELETE /api/v1/projects/<p>/keys/<id>: the public keys a
// project trusts (OpenPGP as `gpg --export` writes it, or a cosign PEM public key). Posting a key
// the project already trusts merges it (sigstore/keys.ts): 201 for a new key, 200 otherwise, with
// `outcome` saying whether anything changed.
import type { ProjectKey } from '../../sigstore/keys.js';
import { MAX_KEY_BYTES, openpgpKeyDetails } from '../../sigstore/keys.js';
import type { ProjectStore } from '../../storage/project-store.js';
import { capture, emptyResponse, queryParam, requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { OciError } from '../errors.js';
import { readBody } from '../request-body.js';

export function keyJson(key: ProjectKey): Record<string, unknown> {
  return {
    id: key.id,
    kind: key.kind,
    fingerprint: key.fingerprint.toUpperCase(),
    keyIds: key.keyIds.map((k) => k.toUpperCase()),
    userIds: key.userIds,
    createdAt: key.createdAt.toISOString(),
    ...(key.createdBy ? { createdBy: key.createdBy } : {}),
  };
}

/** Algorithm, expiry, revocation and subkeys (`?details=1`), for people choosing whether to trust a key. */
async function keyDetailsJson(key: ProjectKey): Promise<Record<string, unknown>> {
  if (key.kind !== 'openpgp') return { algorithm: 'cosign public key (PEM)' };
  const d = await openpgpKeyDetails(key.material);
  const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);
  return {
    algorithm: d.algorithm,
    keyCreatedAt: d.createdAt.toISOString(),
    expiresAt: iso(d.expiresAt),
    revoked: d.revoked,
    subkeys: d.subkeys.map((s) => ({ ...s, createdAt: s.createdAt.toISOString(), expiresAt: iso(s.expiresAt) })),
  };
}

/** NAME_UNKNOWN unless the project exists. */
export async function requireProject(projects: Pick<ProjectStore, 'find'>, name: string): Promise<void> {
  if (!(await projects.find(name))) throw new OciError('NAME_UNKNOWN', `project ${name} not found`);
}

const LOG_MESSAGES = { created: 'trusted key added', updated: 'trusted key updated', unchanged: 'trusted key already present' } as const;

export function createKeyHandlers(deps: Pick<RegistryDeps, 'keys' | 'projects' | 'authorizer'>) {
  const { keys, projects } = deps;
  return {
    async list(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'pull', project);
      await requireProject(projects, project);
      const details = queryParam(ctx, 'details') === '1';
      jsonBody(ctx, {
        keys: await Promise.all(
          (await keys.list(project)).map(async (k) => ({ ...keyJson(k), ...(details ? await keyDetailsJson(k) : {}) })),
        ),
      });
    },

    async add(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'admin', project);
      await requireProject(projects, project);
      const body = await readBody(ctx, { limit: MAX_KEY_BYTES, tooLarge: () => new OciError('REQUEST_INVALID', 'key too large') });
      const { id, outcome, key } = await keys.add(project, body, ctx.state.principal.user);
      ctx.state.log.info({ project, keyId: id, fingerprint: key.fingerprint, kind: key.kind }, LOG_MESSAGES[outcome]);
      const stored = (await keys.list(project)).find((k) => k.id === id)!;
      ctx.set('Location', `/api/v1/projects/${project}/keys/${id}`);
      ctx.status = outcome === 'created' ? 201 : 200;
      jsonBody(ctx, { ...keyJson(stored), outcome });
    },

    async remove(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'admin', project);
      const id = Number(capture(ctx, 1));
      if (!(await keys.remove(project, id, ctx.state.principal.user))) {
        throw new OciError('NAME_UNKNOWN', `project ${project} has no key ${id}`);
      }
      ctx.state.log.info({ project, keyId: id }, 'trusted key removed');
      emptyResponse(ctx, 204);
    },
  };
}
