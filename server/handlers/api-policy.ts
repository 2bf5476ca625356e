// The client configuration that accepts exactly what the project's gate accepts
// (sigstore/policy.ts), in the forms clients take it:
//   GET /api/v1/projects/<p>/policy.json[?default=reject|accept]   containers-policy.json(5)
//   GET /api/v1/projects/<p>/registries.d.yaml                     registries.d(5)
//   GET /api/v1/projects/<p>/machineconfig.yaml[?role=worker&default=accept|reject]
//       an OpenShift MachineConfig writing both files onto the nodes (other images accepted by
//       default there: a node that rejected everything else would stop running its own pods)
//   GET /api/v1/projects/<p>/kbs-resources.json[?default=reject|accept]
//       Confidential Containers KBS resources: {"security-policy", "sigstore-config"}
import { kbsResources, machineConfig, projectPolicy, registriesDYaml } from '../../sigstore/policy.js';
import { defaultSignedPrefix } from '../../sigstore/remap-identity.js';
import { publicHosts } from '../config.js';
import { capture, queryParam, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { requireProject } from './api-keys.js';

const ROLE_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function createPolicyHandlers(deps: Pick<RegistryDeps, 'keys' | 'projects' | 'authorizer' | 'config'>) {
  const { keys, projects, config } = deps;
  /** The name clients use for this registry: the first REGISTRY_HTTP_HOST, else this request's Host. */
  const clientHost = (ctx: Ctx): string => publicHosts(config)[0] ?? ctx.host;
  const lookasideUrl = (ctx: Ctx): string => `${ctx.protocol}://${clientHost(ctx)}${config.signatures.lookaside.path}`;

  /** The project, checked readable; what its exports are built from. */
  async function load(ctx: Ctx) {
    const project = capture(ctx, 0);
    await requireAccess(ctx, deps, 'pull', project);
    await requireProject(projects, project);
    // A mirror project's signatures name the upstream: clients verify them as the gate does, remapped.
    const mirror = (await projects.find(project))?.mirror;
    return {
      project,
      host: clientHost(ctx),
      keys: await keys.list(project),
      ...(mirror ? { signedPrefix: mirror.signedPrefix ?? defaultSignedPrefix(mirror.upstream) } : {}),
    };
  }

  function otherImages(ctx: Ctx, fallback: 'reject' | 'accept'): 'reject' | 'accept' {
    const value = queryParam(ctx, 'default');
    if (value === undefined) return fallback;
    if (value !== 'reject' && value !== 'accept') throw new OciError('QUERY_PARAMETER_INVALID', 'default must be reject or accept');
    return value;
  }

  return {
    async policy(ctx: Ctx): Promise<void> {
      const loaded = await load(ctx);
      const policy = projectPolicy({ ...loaded, otherImages: otherImages(ctx, 'reject') });
      ctx.type = 'application/json';
      ctx.body = `${JSON.stringify(policy, null, 2)}\n`;
    },

    async registriesD(ctx: Ctx): Promise<void> {
      const { host, keys: projectKeys } = await load(ctx);
      const cosign = projectKeys.some((k) => k.kind === 'cosign');
      ctx.type = 'application/yaml';
      ctx.body = registriesDYaml({ host, lookasideUrl: lookasideUrl(ctx), cosign });
    },

    async machineConfig(ctx: Ctx): Promise<void> {
      const loaded = await load(ctx);
      const { project, host, keys: projectKeys } = loaded;
      const role = queryParam(ctx, 'role') ?? 'worker';
      if (!ROLE_RE.test(role)) throw new OciError('QUERY_PARAMETER_INVALID', 'role must be a node role name such as worker or master');
      const policy = projectPolicy({ ...loaded, otherImages: otherImages(ctx, 'accept') });
      const slug = project.replace(/[^a-z0-9]+/g, '-');
      const cosign = projectKeys.some((k) => k.kind === 'cosign');
      const document = machineConfig({
        name: `51-${role}-signet-${slug}-trust`,
        role,
        files: [
          { path: '/etc/containers/policy.json', content: `${JSON.stringify(policy, null, 2)}\n` },
          {
            path: `/etc/containers/registries.d/signet-${slug}.yaml`,
            content: registriesDYaml({ host, lookasideUrl: lookasideUrl(ctx), cosign }),
          },
        ],
      });
      ctx.type = 'application/yaml';
      // Loaded here, not at start-up (server/config.ts).
      const { default: YAML } = await import('yaml');
      ctx.body = YAML.stringify(document, { lineWidth: 0 });
    },

    async kbs(ctx: Ctx): Promise<void> {
      const loaded = await load(ctx);
      const { project, host } = loaded;
      const policy = projectPolicy({ ...loaded, otherImages: otherImages(ctx, 'reject') });
      ctx.type = 'application/json';
      ctx.body = `${JSON.stringify(kbsResources({ policy, scope: `${host}/${project}`, lookasideUrl: lookasideUrl(ctx) }), null, 2)}\n`;
    },
  };
}
