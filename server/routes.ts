// The whole OCI distribution surface as one table. Repository names contain slashes
// (`project/team/app`), so routes are regular expressions whose first capture is the name; the
// name is validated against the spec's grammar inside each handler.
import Router from '@koa/router';
import type { RegistryDeps, RequestState } from './context.js';
import type { Ctx } from './context.js';
import { createTrustApiHandlers } from '../sigstore/api-routes.js';
import { createExtensionHandlers } from '../sigstore/extension-routes.js';
import { createLookasideHandlers } from '../sigstore/lookaside-routes.js';
import { createProjectApiHandlers } from './handlers/api-projects.js';
import { createBlobHandlers } from './handlers/blobs.js';
import { createHealthHandlers } from './handlers/health.js';
import { createListingHandlers } from './handlers/listings.js';
import { createManifestHandlers } from './handlers/manifests.js';
import { createUploadHandlers } from './handlers/uploads.js';

type Method = 'get' | 'head' | 'put' | 'patch' | 'post' | 'delete';
type Handler = (ctx: Ctx) => void | Promise<void>;

export function createRegistryRouter(deps: RegistryDeps): Router<RequestState> {
  const blobs = createBlobHandlers(deps);
  const uploads = createUploadHandlers(deps);
  const manifests = createManifestHandlers(deps);
  const listings = createListingHandlers(deps);
  const health = createHealthHandlers(deps.db, deps.store);
  const api = createProjectApiHandlers(deps);
  const trust = createTrustApiHandlers(deps);
  const extension = createExtensionHandlers(deps);
  const lookaside = createLookasideHandlers(deps);
  const base = deps.config.signatures.lookaside.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const lookasidePath = new RegExp(`^${base}/(.+)@sha256=([a-f0-9]{64})/signature-(\\d{1,9})$`);

  const table: [Method[], RegExp, Handler][] = [
    [['get', 'head'], /^\/healthz$/, health.live],
    [['get', 'head'], /^\/readyz$/, health.ready],
    [['get', 'head'], /^\/v2\/?$/, listings.base],
    [['get'], /^\/v2\/_catalog$/, listings.catalog],
    [['get'], /^\/v2\/(.+)\/tags\/list$/, listings.tags],
    [['get', 'head'], /^\/v2\/(.+)\/manifests\/([^/]+)$/, manifests.get],
    [['put'], /^\/v2\/(.+)\/manifests\/([^/]+)$/, manifests.put],
    [['delete'], /^\/v2\/(.+)\/manifests\/([^/]+)$/, manifests.delete],
    [['post'], /^\/v2\/(.+)\/blobs\/uploads\/?$/, uploads.start],
    [['get'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.status],
    [['patch'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.patch],
    [['put'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.finish],
    [['delete'], /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, uploads.cancel],
    [['get', 'head'], /^\/v2\/(.+)\/blobs\/([^/]+)$/, blobs.get],
    [['delete'], /^\/v2\/(.+)\/blobs\/([^/]+)$/, blobs.delete],
    [['get'], /^\/v2\/(.+)\/referrers\/([^/]+)$/, listings.referrers],

    // Signatures: the lookaside layout and OpenShift's API extension.
    [['get', 'head'], lookasidePath, lookaside.get],
    [['put'], lookasidePath, lookaside.put],
    [['delete'], lookasidePath, lookaside.delete],
    ...(deps.config.signatures.extension
      ? ([
          [['get'], /^\/extensions\/v2\/(.+)\/signatures\/([^/]+)$/, extension.list],
          [['put'], /^\/extensions\/v2\/(.+)\/signatures\/([^/]+)$/, extension.put],
        ] as [Method[], RegExp, Handler][])
      : []),

    // Management API.
    [['get'], /^\/api\/v1\/projects\/([^/]+)\/policy\.json$/, trust.policy],
    [['get'], /^\/api\/v1\/projects\/([^/]+)\/registries\.d\.yaml$/, trust.registriesD],
    [['get'], /^\/api\/v1\/projects\/([^/]+)\/keys\/?$/, trust.listKeys],
    [['post'], /^\/api\/v1\/projects\/([^/]+)\/keys\/?$/, trust.addKey],
    [['delete'], /^\/api\/v1\/projects\/([^/]+)\/keys\/(\d{1,15})$/, trust.removeKey],
    [['get'], /^\/api\/v1\/projects\/([^/]+)\/repositories\/(.+)\/signatures\/([^/]+)$/, trust.listSignatures],
    [['get'], /^\/api\/v1\/projects\/?$/, api.list],
    [['post'], /^\/api\/v1\/projects\/?$/, api.create],
    [['get'], /^\/api\/v1\/projects\/([^/]+)$/, api.get],
    [['patch'], /^\/api\/v1\/projects\/([^/]+)$/, api.update],
    [['delete'], /^\/api\/v1\/projects\/([^/]+)$/, api.remove],
    [['get'], /^\/api\/v1\/projects\/([^/]+)\/members\/?$/, api.members],
    [['put'], /^\/api\/v1\/projects\/([^/]+)\/members\/([^/]+)$/, api.setMember],
    [['delete'], /^\/api\/v1\/projects\/([^/]+)\/members\/([^/]+)$/, api.removeMember],
    [['get'], /^\/api\/v1\/projects\/([^/]+)\/repositories\/?$/, api.repositories],
    [['get'], /^\/api\/v1\/projects\/([^/]+)\/repositories\/(.+)\/tags\/?$/, api.tags],
  ];

  const router = new Router<RequestState>();
  for (const [methods, path, handler] of table) {
    for (const method of methods) router[method](path, (ctx) => handler(ctx as Ctx));
  }
  return router;
}
