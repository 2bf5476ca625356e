// The whole OCI distribution surface as one table. Repository names contain slashes
// (`project/team/app`), so routes are regular expressions whose first capture is the name; the
// name is validated against the spec's grammar inside each handler.
import Router from '@koa/router';
import type { Middleware } from 'koa';
import type { RegistryDeps, RequestState } from './context.js';
import type { Ctx } from './context.js';
import { createKeyHandlers } from './handlers/api-keys.js';
import { createPolicyHandlers } from './handlers/api-policy.js';
import { createSignatureListHandler } from './handlers/api-signatures.js';
import { createLookasideHandlers } from './handlers/lookaside.js';
import { createExtensionHandlers } from './handlers/signature-extension.js';
import { createProjectApiHandlers } from './handlers/api-projects.js';
import { createMirrorApiHandlers } from './handlers/api-mirror.js';
import { createBlobHandlers } from './handlers/blobs.js';
import { createGcHandler } from './handlers/gc.js';
import { createHealthHandlers } from './handlers/health.js';
import { createListingHandlers } from './handlers/listings.js';
import { createManifestHandlers } from './handlers/manifests.js';
import { createUploadHandlers } from './handlers/uploads.js';
import { createTokenHandlers } from './handlers/token.js';
import { createRobotHandlers } from './handlers/api-robots.js';
import { createConsoleHandlers } from './handlers/console.js';
import { createSessionHandlers } from './handlers/api-session.js';
import { createTrustHandlers } from './handlers/api-trust.js';
import { createAuditHandler } from './handlers/api-audit.js';
import { createStatusHandler } from './handlers/api-status.js';
import { createArtifactHandlers } from './handlers/api-artifacts.js';
import { OciError } from './errors.js';
import { renderMetrics } from './metrics.js';

type Method = 'get' | 'head' | 'put' | 'patch' | 'post' | 'delete';
type Handler = (ctx: Ctx) => void | Promise<void>;
type Route = [name: string, methods: Method[], path: RegExp, handler: Handler];

const WRITE_METHODS: ReadonlySet<Method> = new Set(['put', 'patch', 'post', 'delete']);
/** The management API and the console's sign-in. */
const API_PREFIX = '/api/v1/';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface RegistryRoutes {
  routes: Middleware<RequestState>;
  /** Every route, for tests that check them all. */
  layers: { methods: string[]; regexp: RegExp; path: string | RegExp }[];
}

export function createRegistryRoutes(deps: RegistryDeps): RegistryRoutes {
  const blobs = createBlobHandlers(deps);
  const uploads = createUploadHandlers(deps);
  const manifests = createManifestHandlers(deps);
  const listings = createListingHandlers(deps);
  const health = createHealthHandlers(deps);
  const api = createProjectApiHandlers(deps);
  const keys = createKeyHandlers(deps);
  const policy = createPolicyHandlers(deps);
  const extension = createExtensionHandlers(deps);
  const lookaside = createLookasideHandlers(deps);
  const token = createTokenHandlers(deps);
  const robots = createRobotHandlers(deps);
  const mirror = createMirrorApiHandlers(deps);
  const webConsole = createConsoleHandlers(deps);
  const session = createSessionHandlers(deps);
  const trust = createTrustHandlers(deps);
  const artifacts = createArtifactHandlers(deps);
  const base = escapeRegExp(deps.config.signatures.lookaside.path);
  const prometheus = deps.config.http.debug.prometheus;
  const metricsRoute = async (ctx: Ctx): Promise<void> => {
    const { contentType, body } = await renderMetrics(deps.metrics);
    ctx.type = contentType;
    ctx.body = body;
  };
  const lookasidePath = new RegExp(`^${base}/(.+)@sha256=([a-f0-9]{64})/signature-(\\d{1,9})$`);

  // [name (the metrics label), methods, path, handler], in sections by the literal prefix every
  // path of a section starts with. @koa/router tests every route's expression on every request;
  // a request is only tested against the sections it is under: a manifest GET or blob HEAD
  // against the 8 path expressions of /v2 rather than all 75 routes (5 % of the server's CPU under
  // ab on blob HEAD, issue 22). Sections are tried in this order, each only when nothing before it matched.
  const sections: [prefix: string, routes: Route[]][] = [
    [
      '/v2',
      [
        ['base', ['get', 'head'], /^\/v2\/?$/, listings.base],
        ['catalog', ['get'], /^\/v2\/_catalog$/, listings.catalog],
        ['tags.list', ['get'], /^\/v2\/(.+)\/tags\/list$/, listings.tags],
        ['manifest.get', ['get', 'head'], /^\/v2\/(.+)\/manifests\/([^/]+)$/, manifests.get],
        ['manifest.put', ['put'], /^\/v2\/(.+)\/manifests\/([^/]+)$/, manifests.put],
        ['manifest.delete', ['delete'], /^\/v2\/(.+)\/manifests\/([^/]+)$/, manifests.delete],
        ['upload.start', ['post'], /^\/v2\/(.+)\/blobs\/uploads\/?$/, uploads.start],
        ['upload.status', ['get'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.status],
        ['upload.patch', ['patch'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.patch],
        ['upload.finish', ['put'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.finish],
        ['upload.cancel', ['delete'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.cancel],
        ['blob.get', ['get', 'head'], /^\/v2\/(.+)\/blobs\/([^/]+)$/, blobs.get],
        ['blob.delete', ['delete'], /^\/v2\/(.+)\/blobs\/([^/]+)$/, blobs.delete],
        ['referrers', ['get'], /^\/v2\/(.+)\/referrers\/([^/]+)$/, listings.referrers],
      ],
    ],
    // Signatures: the lookaside layout and OpenShift's API extension.
    [
      `${deps.config.signatures.lookaside.path}/`,
      [
        ['lookaside.get', ['get', 'head'], lookasidePath, lookaside.get],
        ['lookaside.put', ['put'], lookasidePath, lookaside.put],
        ['lookaside.delete', ['delete'], lookasidePath, lookaside.delete],
      ],
    ],
    [
      '/extensions/v2/',
      deps.config.signatures.extension
        ? [
            ['extension.list', ['get'], /^\/extensions\/v2\/(.+)\/signatures\/([^/]+)$/, extension.list],
            ['extension.put', ['put'], /^\/extensions\/v2\/(.+)\/signatures\/([^/]+)$/, extension.put],
          ]
        : [],
    ],
    // Management API, and the console's sign-in.
    [
      API_PREFIX,
      [
        ['api.gc', ['post'], /^\/api\/v1\/gc$/, createGcHandler(deps)],
        ['api.mirror.run', ['post'], /^\/api\/v1\/projects\/([^/]+)\/mirror\/run$/, mirror.run],
        ['api.policy', ['get'], /^\/api\/v1\/projects\/([^/]+)\/policy\.json$/, policy.policy],
        ['api.registries-d', ['get'], /^\/api\/v1\/projects\/([^/]+)\/registries\.d\.yaml$/, policy.registriesD],
        ['api.machineconfig', ['get'], /^\/api\/v1\/projects\/([^/]+)\/machineconfig\.yaml$/, policy.machineConfig],
        ['api.kbs-resources', ['get'], /^\/api\/v1\/projects\/([^/]+)\/kbs-resources\.json$/, policy.kbs],
        ['api.audit', ['get'], /^\/api\/v1\/projects\/([^/]+)\/audit\/?$/, createAuditHandler(deps)],
        ['api.gate-preview', ['get'], /^\/api\/v1\/projects\/([^/]+)\/gate-preview$/, trust.preview],
        ['api.trust', ['get'], /^\/api\/v1\/projects\/([^/]+)\/repositories\/(.+)\/trust$/, trust.tags],
        ['api.status', ['get'], /^\/api\/v1\/status$/, createStatusHandler(deps)],
        ['api.tag.delete', ['delete'], /^\/api\/v1\/projects\/([^/]+)\/repositories\/(.+)\/tags\/([^/]+)$/, artifacts.removeTag],
        [
          'api.manifest.delete',
          ['delete'],
          /^\/api\/v1\/projects\/([^/]+)\/repositories\/(.+)\/manifests\/([^/]+)$/,
          artifacts.removeManifest,
        ],
        ['api.keys.list', ['get'], /^\/api\/v1\/projects\/([^/]+)\/keys\/?$/, keys.list],
        ['api.keys.add', ['post'], /^\/api\/v1\/projects\/([^/]+)\/keys\/?$/, keys.add],
        ['api.keys.remove', ['delete'], /^\/api\/v1\/projects\/([^/]+)\/keys\/(\d{1,15})$/, keys.remove],
        [
          'api.signatures',
          ['get'],
          /^\/api\/v1\/projects\/([^/]+)\/repositories\/(.+)\/signatures\/([^/]+)$/,
          createSignatureListHandler(deps),
        ],
        ['api.projects.list', ['get'], /^\/api\/v1\/projects\/?$/, api.list],
        ['api.projects.create', ['post'], /^\/api\/v1\/projects\/?$/, api.create],
        ['api.project.get', ['get'], /^\/api\/v1\/projects\/([^/]+)$/, api.get],
        ['api.project.update', ['patch'], /^\/api\/v1\/projects\/([^/]+)$/, api.update],
        ['api.project.delete', ['delete'], /^\/api\/v1\/projects\/([^/]+)$/, api.remove],
        ['api.members.list', ['get'], /^\/api\/v1\/projects\/([^/]+)\/members\/?$/, api.members],
        ['api.member.set', ['put'], /^\/api\/v1\/projects\/([^/]+)\/members\/([^/]+)$/, api.setMember],
        ['api.member.remove', ['delete'], /^\/api\/v1\/projects\/([^/]+)\/members\/([^/]+)$/, api.removeMember],
        ['api.robots.list', ['get'], /^\/api\/v1\/projects\/([^/]+)\/robots\/?$/, robots.list],
        ['api.robots.create', ['post'], /^\/api\/v1\/projects\/([^/]+)\/robots\/?$/, robots.create],
        ['api.robot.revoke', ['delete'], /^\/api\/v1\/projects\/([^/]+)\/robots\/([^/]+)$/, robots.revoke],
        ['api.repositories', ['get'], /^\/api\/v1\/projects\/([^/]+)\/repositories\/?$/, api.repositories],
        ['api.tags', ['get'], /^\/api\/v1\/projects\/([^/]+)\/repositories\/(.+)\/tags\/?$/, api.tags],
        ['api.session.get', ['get'], /^\/api\/v1\/session$/, session.get],
        ['api.session.create', ['post'], /^\/api\/v1\/session$/, session.signIn],
        ['api.session.delete', ['delete'], /^\/api\/v1\/session$/, session.signOut],
      ],
    ],
    [
      '/',
      [
        ['healthz', ['get', 'head'], /^\/healthz$/, health.live],
        ['readyz', ['get', 'head'], /^\/readyz$/, health.ready],
        // The token service (token mode): GET and the OAuth2 POST form.
        ['token', ['get'], /^\/token$/, token.get],
        ['token.oauth', ['post'], /^\/token$/, token.post],
        // The web console (browsers only).
        ['console', ['get', 'head'], /^\/$/, webConsole.index],
        ['console.asset', ['get', 'head'], /^\/assets\/([A-Za-z0-9._-]+)$/, webConsole.asset],
        // Prometheus, without registry authorization; on its own listener instead when http.debug.addr is set.
        ...(prometheus.enabled && !deps.config.http.debug.addr
          ? ([['metrics', ['get'], new RegExp(`^${escapeRegExp(prometheus.path)}$`), metricsRoute]] as Route[])
          : []),
      ],
    ],
  ];

  // Read-only mode (storage.maintenance.readonly): the write methods are refused on every route,
  // 405 as the Go registry answers (it drops those handlers), with the usual OCI error body.
  const readOnly = deps.config.storage.maintenance.readonly.enabled;
  const routers = sections.map(([prefix, routes]) => {
    const router = new Router<RequestState>();
    // One router layer per path expression, whatever its methods: the router tests every layer's
    // expression on every request, and a manifest path was tested three times (GET, PUT, DELETE),
    // an upload's four, a blob's twice: 14 tests for any request under /v2 instead of 8.
    type PathRoutes = { path: RegExp; methods: Map<string, [name: string, method: Method, handler: Handler]> };
    const byPath = new Map<string, PathRoutes>();
    for (const [name, methods, path, handler] of routes) {
      if (!path.source.startsWith(`^${escapeRegExp(prefix).replaceAll('/', '\\/')}`)) {
        throw new Error(`route ${name}: ${String(path)} is outside its section ${prefix}`);
      }
      const entry: PathRoutes = byPath.get(path.source) ?? { path, methods: new Map() };
      byPath.set(path.source, entry);
      for (const method of methods) {
        const upper = method.toUpperCase();
        const taken = entry.methods.get(upper);
        if (taken) throw new Error(`route ${name}: ${upper} ${String(path)} is already route ${taken[0]}`);
        entry.methods.set(upper, [name, method, handler]);
      }
    }
    for (const { path, methods } of byPath.values()) {
      // The router adds HEAD to a layer that has GET; the handler of an explicit HEAD stays, and
      // without one HEAD is answered by the GET route.
      const registered = [...methods.keys()].filter((method) => method !== 'HEAD' || !methods.has('GET'));
      if (methods.has('GET') && !methods.has('HEAD')) methods.set('HEAD', methods.get('GET')!);
      router.register(
        path,
        registered,
        (ctx) => {
          const [name, method, handler] = methods.get(ctx.method)!;
          ctx.state.route = name;
          // A token request is a POST that writes nothing: read-only mode leaves it alone.
          if (readOnly && WRITE_METHODS.has(method) && name !== 'token.oauth') {
            throw new OciError('UNSUPPORTED', 'the registry is in read-only mode for maintenance', { readOnly: true });
          }
          return handler(ctx);
        },
        { pathAsRegExp: true },
      );
    }
    const dispatch: (ctx: Parameters<ReturnType<typeof router.routes>>[0], next: () => Promise<unknown>) => Promise<unknown> =
      router.routes();
    return { prefix, router, dispatch };
  });
  return {
    // A router that matched nothing calls `next`: the next section under the path, or what
    // follows the routes. Each router adds what it matched to ctx.matched (405 or 404 after).
    routes: (ctx, next) => {
      let i = 0;
      const step = (): Promise<unknown> => {
        while (i < routers.length) {
          const section = routers[i++]!;
          if (!ctx.path.startsWith(section.prefix)) continue;
          // A bearer token is for /v2 and the signature routes (docker, containerd, skopeo fetch one
          // per repository); the management API takes Basic credentials or a console session. Its
          // checks name projects, which a token's grants (repository names) must never be read as:
          // a pull token for a repository `team` opened project team's listings.
          if (section.prefix === API_PREFIX && ctx.state.principal.grants !== undefined) {
            return Promise.reject(
              new OciError(
                'UNAUTHORIZED',
                'a bearer token does not open the management API: it takes Basic credentials or a console session',
                undefined,
                { basic: true },
              ),
            );
          }
          // The router adds its params and itself to the context: what it takes is this one.
          return section.dispatch(ctx as Parameters<typeof section.dispatch>[0], step);
        }
        return next();
      };
      return step();
    },
    layers: routers.flatMap((section) => section.router.stack),
  };
}
