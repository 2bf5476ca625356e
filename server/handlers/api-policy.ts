// GET /api/v1/projects/<p>/policy.json[?default=reject|accept] and …/registries.d.yaml: the client
// configuration that accepts exactly what the project's gate accepts (sigstore/policy.ts).
import { projectPolicy, registriesDYaml } from '../../sigstore/policy.js';
import { defaultSignedPrefix } from '../../sigstore/remap-identity.js';
import { publicHosts } from '../config.js';
import { capture, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { requireProject } from './api-keys.js';

export function createPolicyHandlers(deps: Pick<RegistryDeps, 'keys' | 'projects' | 'authorizer' | 'config'>) {
  const { keys, projects, config } = deps;
  /** The name clients use for this registry: the first REGISTRY_HTTP_HOST, else this request's Host. */
  const clientHost = (ctx: Ctx): string => publicHosts(config)[0] ?? ctx.host;

  return {
    async policy(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'pull', project);
      await requireProject(projects, project);
      const other = ctx.query.default === 'accept' ? 'accept' : 'reject';
      const mirror = (await projects.find(project))?.mirror;
      const policy = projectPolicy({
        host: clientHost(ctx),
        project,
        keys: await keys.list(project),
        otherImages: other,
        ...(mirror ? { signedPrefix: mirror.signedPrefix ?? defaultSignedPrefix(mirror.upstream) } : {}),
      });
      ctx.type = 'application/json';
      ctx.body = `${JSON.stringify(policy, null, 2)}\n`;
    },

    async registriesD(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'pull', project);
      await requireProject(projects, project);
      const host = clientHost(ctx);
      const cosign = (await keys.list(project)).some((k) => k.kind === 'cosign');
      ctx.type = 'application/yaml';
      ctx.body = registriesDYaml({ host, lookasideUrl: `${ctx.protocol}://${host}${config.signatures.lookaside.path}`, cosign });
    },
  };
}
