// Discovery: GET /v2/, /v2/_catalog, /v2/<name>/tags/list, /v2/<name>/referrers/<digest>
import {
  allowed,
  answer,
  capture,
  queryParam,
  requireAccess,
  textParam,
  type Ctx,
  type RegistryDeps,
  jsonBody,
  JSON_TYPE,
} from '../context.js';
import { OciError } from '../errors.js';
import { MEDIA_TYPES } from '../../storage/manifest-parse.js';
import type { TagListJson } from '../../storage/metadata-store.js';
import { finishPage, parsePage } from '../pagination.js';
import { requireDigest, requireName } from '../oci-names.js';

/** Without `n`, the Go registry lists every tag; catalogs default to its maxentries (1000). */
const ALL = 1_000_000;
const CATALOG_DEFAULT = 1000;
const CATALOG_MAX = 10_000;
/**
 * A referrers page: each manifest may carry up to 4 MiB of annotations, all of which the listing
 * must show, so a page holds at most this many bytes of them (one referrer always fits) and at
 * most this many referrers; a Link header names the next. Unbounded, 35 referrers with 3.9 MB of
 * annotations each ran the embedded database out of memory on one anonymous GET (adversarial
 * testing).
 */
const REFERRERS_PAGE = 1000;
/** Repository names the catalog reads per statement, whatever the page size. */
const CATALOG_SCAN_BATCH = 1000;
const REFERRERS_PAGE_ANNOTATION_BYTES = 4 * 1024 * 1024;

export function createListingHandlers(deps: Pick<RegistryDeps, 'metadata' | 'config' | 'authorizer'>) {
  const { metadata } = deps;
  // Rendered tag lists, by the list the metadata store handed out (a page's array, or a whole
  // list's JSON text): the cached store hands out the same object until the repository changes,
  // and it goes (with its entry here) when the cache drops it. Mirrors and CI poll tags/list, and
  // rendering 50 tags as JSON on every GET took a tenth of the request's time (bench/, "tags/list").
  const rendered = new WeakMap<string[] | TagListJson, { name: string; body: Buffer }>();
  const tagsBody = (name: string, tags: string[] | TagListJson): Buffer => {
    const hit = rendered.get(tags);
    if (hit?.name === name) return hit.body;
    const body = Buffer.from(Array.isArray(tags) ? JSON.stringify({ name, tags }) : `{"name":${JSON.stringify(name)},"tags":${tags.json}}`);
    rendered.set(tags, { name, body });
    return body;
  };
  const unknown = (name: string): OciError => new OciError('NAME_UNKNOWN', 'repository name not known to registry', { name });

  return {
    base(ctx: Ctx): void {
      // With authentication on, the API root needs credentials: `docker login` checks this 200,
      // and an anonymous 401 with the challenge tells clients how to authenticate.
      // In token mode an anonymous token is an answer to the challenge too (as Docker Hub's /v2/).
      if (deps.config.auth.htpasswd && ctx.state.principal.user === undefined && ctx.state.principal.grants === undefined) {
        throw new OciError('UNAUTHORIZED', 'authentication required');
      }
      ctx.type = 'application/json';
      ctx.body = '{}';
    },

    async catalog(ctx: Ctx): Promise<void> {
      const page = parsePage(ctx, CATALOG_DEFAULT, CATALOG_MAX);
      const visible: string[] = [];
      // Fetch past repositories the caller may not see until the page is full, in batches of at
      // least CATALOG_SCAN_BATCH: fetched n + 1 at a time, an anonymous `?n=1` over 3,000 private
      // repositories took 1,500 statements and a second of CPU (adversarial testing).
      const batchSize = Math.max(page.limit, CATALOG_SCAN_BATCH);
      let cursor = page.last;
      for (;;) {
        const batch = page.n === 0 ? [] : await metadata.repositories.list({ ...(cursor ? { last: cursor } : {}), limit: batchSize });
        for (const name of batch) {
          if (visible.length >= page.limit) break;
          if (await allowed(ctx, deps, 'pull', name)) visible.push(name);
        }
        if (batch.length < batchSize || visible.length >= page.limit) break;
        cursor = batch[batch.length - 1];
      }
      jsonBody(ctx, { repositories: finishPage(ctx, '/v2/_catalog', page, visible.slice(0, page.limit)) });
    },

    async tags(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'pull', name);
      const page = parsePage(ctx, ALL, ALL);
      if (page.n === ALL && page.last === undefined) {
        // The whole list (what containers/image and the Go registry's clients ask for: no n), as
        // the database wrote it: no JavaScript string per tag (bench/, "Reads at scale").
        const whole = await metadata.tags.listJson(name, ALL);
        if (!whole) throw unknown(name);
        if (whole.count <= ALL) {
          answer(ctx, 200, ['Content-Type', JSON_TYPE], tagsBody(name, whole));
          return;
        }
      }
      const tags = await metadata.tags.list(name, page);
      if (!tags) throw unknown(name);
      ctx.type = JSON_TYPE;
      ctx.body = tagsBody(name, finishPage(ctx, `/v2/${name}/tags/list`, page, tags));
    },

    async referrers(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'pull', name);
      const digest = requireDigest(capture(ctx, 1));
      const artifactType = textParam(ctx, 'artifactType');
      // The cursor of a page this registry's Link header named: a digest.
      const last = queryParam(ctx, 'last');
      const after = last === undefined ? undefined : requireDigest(last).digest;
      const page = await metadata.manifests.referrers(name, digest.digest, {
        ...(artifactType ? { artifactType } : {}),
        ...(after ? { after } : {}),
        limit: REFERRERS_PAGE,
        annotationBytes: REFERRERS_PAGE_ANNOTATION_BYTES,
      });
      if (artifactType) ctx.set('OCI-Filters-Applied', 'artifactType');
      if (page.next) {
        // The spec's paging: a Link to the next page, which oras and go-containerregistry follow.
        const query = new URLSearchParams({ ...(artifactType ? { artifactType } : {}), last: page.next });
        ctx.set('Link', `</v2/${name}/referrers/${digest.digest}?${query.toString()}>; rel="next"`);
      }
      // Always an index, empty when nothing refers to the digest: never 404 for a valid digest.
      ctx.type = MEDIA_TYPES.ociIndex;
      ctx.body = JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociIndex,
        manifests: page.referrers.map((r) => ({
          mediaType: r.mediaType,
          digest: r.digest,
          size: r.size,
          ...(r.artifactType ? { artifactType: r.artifactType } : {}),
          ...(r.annotations ? { annotations: r.annotations } : {}),
        })),
      });
    },
  };
}
