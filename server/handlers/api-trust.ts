// What a pull of each tag would get, for people (the console) and scripts:
//   GET /api/v1/projects/<p>/repositories/<r>/trust[?n=25&last=<tag>]
//       a page of tags, each with its digest, size, platforms, referrers, every signature judged,
//       its trust state and the pull gate's own decision (sigstore/pull-gate.ts `explain`: the
//       same judgement, and cache, as a pull);
//   GET /api/v1/projects/<p>/gate-preview
//       the tags a signed-only switch would stop serving, with the gate's reason, before it is on
//       (project members only).
import { isIndexMediaType, jsonObjectOf } from '../../storage/manifest-parse.js';
import type { ManifestRecord, TagRecord } from '../../storage/metadata-store.js';
import type { GateExplanation } from '../../sigstore/pull-gate.js';
import type { ProjectKey } from '../../sigstore/keys.js';
import { publicHosts } from '../config.js';
import { capture, queryParam, requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { OciError } from '../errors.js';
import { isValidName } from '../../storage/oci-grammar.js';
import { requireProject } from './api-keys.js';
import { lastParam } from '../pagination.js';

/** What a person should read first about a tag's signatures. */
export type TrustState = 'verified' | 'signature-artifact' | 'untrusted' | 'other-reference' | 'unsigned';

const PAGE_DEFAULT = 25;
const PAGE_MAX = 200;
/** Referrers listed per tag in the trust view. */
const TRUST_VIEW_REFERRERS = 100;
/**
 * Bytes of manifests one page of the trust view loads, judges and describes (each may hold 4 MiB):
 * past it the page ends early and `next` goes on from there. 200 tags of 3.9 MB manifests loaded at
 * once held 2 GB and echoed 468 MB of platform strings (adversarial testing).
 */
const PAGE_MANIFEST_BYTES = 8 * 1024 * 1024;
/** The most tags a preview judges (each needs its signatures verified). */
const PREVIEW_MAX_TAGS = 5000;

export function trustState(explanation: GateExplanation): TrustState {
  const { decision, signatures } = explanation;
  if (decision.allowed) return decision.via === 'signature' ? 'verified' : 'signature-artifact';
  if (signatures.length === 0) return 'unsigned';
  return signatures.some((s) => s.stage === 'claim') ? 'other-reference' : 'untrusted';
}

/** Size of what a pull fetches (manifest, config and layers; for an index, what it lists), and its platforms. */
function describeManifest(manifest: ManifestRecord): { size: number; platforms: string[] } {
  const body = jsonObjectOf(manifest.content);
  const sizeOf = (d: unknown): number =>
    typeof d === 'object' && d !== null && typeof (d as { size?: unknown }).size === 'number' ? (d as { size: number }).size : 0;
  if (isIndexMediaType(manifest.mediaType)) {
    const children = Array.isArray(body.manifests) ? (body.manifests as Record<string, unknown>[]) : [];
    const platforms = children
      .map((c) => c.platform as { os?: unknown; architecture?: unknown; variant?: unknown } | undefined)
      .filter((p): p is { os?: unknown; architecture?: unknown; variant?: unknown } => typeof p === 'object' && p !== null)
      .map((p) => [p.os, p.architecture, p.variant].filter((x): x is string => typeof x === 'string').join('/'))
      .filter((p) => p !== '' && p !== 'unknown/unknown');
    return { size: manifest.size + children.reduce((n, c) => n + sizeOf(c), 0), platforms };
  }
  const layers = Array.isArray(body.layers) ? body.layers : [];
  return { size: manifest.size + sizeOf(body.config) + layers.reduce((n: number, l: unknown) => n + sizeOf(l), 0), platforms: [] };
}

function pageSize(ctx: Ctx): number {
  const n = queryParam(ctx, 'n');
  if (n === undefined) return PAGE_DEFAULT;
  if (!/^\d{1,4}$/.test(n) || Number(n) < 1 || Number(n) > PAGE_MAX)
    throw new OciError('QUERY_PARAMETER_INVALID', `n must be 1 to ${PAGE_MAX}`);
  return Number(n);
}

export function createTrustHandlers(deps: Pick<RegistryDeps, 'metadata' | 'gate' | 'keys' | 'projects' | 'authorizer' | 'config'>) {
  const { metadata, gate, keys, config } = deps;
  const hostsOf = (ctx: Ctx) => {
    const hosts = publicHosts(config);
    return () => (hosts.length > 0 ? hosts : [ctx.host]);
  };

  /** The trusted key a key ID belongs to (a primary key or a subkey), for naming the signer. */
  function signerOf(projectKeys: ProjectKey[], keyId: string | undefined): Record<string, unknown> {
    if (!keyId) return {};
    const key = projectKeys.find(
      (k) =>
        k.keyIds.some((id) => id.toUpperCase() === keyId) ||
        (keyId.startsWith('cosign:') && k.fingerprint.toUpperCase().startsWith(keyId.slice(7))),
    );
    return key ? { signer: { keyId: key.id, fingerprint: key.fingerprint.toUpperCase(), userIds: key.userIds } } : {};
  }

  async function tagJson(
    ctx: Ctx,
    repository: string,
    record: TagRecord,
    projectKeys: ProjectKey[],
  ): Promise<{ json: Record<string, unknown>; bytes: number } | undefined> {
    const { name: tag, digest } = record;
    const manifest = await metadata.manifests.find(repository, digest);
    if (!manifest) return undefined;
    const [explanation, referrers] = await Promise.all([
      gate.explain({ repository, tag, manifest, hosts: hostsOf(ctx) }),
      // What the console lists of them; their annotations are not shown.
      metadata.manifests.referrers(repository, digest, { limit: TRUST_VIEW_REFERRERS }),
    ]);
    const { decision } = explanation;
    const json = {
      name: tag,
      digest,
      pushedAt: record.updatedAt.toISOString(),
      mediaType: manifest.mediaType,
      ...describeManifest(manifest),
      state: trustState(explanation),
      gate: {
        enforced: explanation.enforced,
        served: decision.allowed,
        ...(decision.allowed ? { via: decision.via } : { reason: decision.message, keyIds: decision.keyIds }),
      },
      signatures: explanation.signatures.map((s) => ({
        format: s.format,
        ...(s.keyId ? { keyId: s.keyId } : {}),
        ...signerOf(projectKeys, s.keyId),
        ...(s.identity ? { identity: s.identity } : {}),
        ...(s.signedAt ? { signedAt: s.signedAt.toISOString() } : {}),
        accepted: s.accepted,
        ...(s.problem ? { problem: s.problem, stage: s.stage } : {}),
      })),
      referrers: referrers.referrers.map((r) => ({
        digest: r.digest,
        mediaType: r.mediaType,
        ...(r.artifactType ? { artifactType: r.artifactType } : {}),
      })),
    };
    return { json, bytes: manifest.size };
  }

  return {
    async tags(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      const repository = `${project}/${capture(ctx, 1)}`;
      if (!isValidName(repository)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: repository });
      await requireAccess(ctx, deps, 'pull', repository);
      const limit = pageSize(ctx);
      const last = lastParam(ctx);
      const listed = await metadata.tags.listDetailed(repository, { limit: limit + 1, ...(last ? { last } : {}) });
      if (!listed) throw new OciError('NAME_UNKNOWN', `repository ${repository} not found`);
      const page = listed.slice(0, limit);
      const projectKeys = await keys.list(project);
      // One tag at a time, within the page's bytes of manifests.
      const tags: Record<string, unknown>[] = [];
      let next = listed.length > limit ? page[page.length - 1]!.name : undefined;
      let loaded = 0;
      for (const [i, record] of page.entries()) {
        if (i > 0 && loaded >= PAGE_MANIFEST_BYTES) {
          next = page[i - 1]!.name;
          break;
        }
        const entry = await tagJson(ctx, repository, record, projectKeys);
        if (!entry) continue;
        loaded += entry.bytes;
        tags.push(entry.json);
      }
      jsonBody(ctx, { name: repository, tags, ...(next !== undefined ? { next } : {}) });
    },

    async preview(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      // For the project's members, who decide on the switch: it judges up to 5,000 tags, seconds
      // of CPU that an anonymous caller of a public project could otherwise ask for at will.
      await requireAccess(ctx, deps, 'view', project);
      await requireProject(deps.projects, project);
      const refused: Record<string, unknown>[] = [];
      let judged = 0;
      let truncated = false;
      for (const repository of await metadata.repositories.list({ project, limit: 100_000 })) {
        let last: string | undefined;
        for (;;) {
          const names = await metadata.tags.listDetailed(repository, { limit: 500, ...(last ? { last } : {}) });
          if (!names || names.length === 0) break;
          for (const { name: tag, digest } of names) {
            if (judged >= PREVIEW_MAX_TAGS) {
              truncated = true;
              break;
            }
            const manifest = await metadata.manifests.find(repository, digest);
            if (!manifest) continue;
            judged += 1;
            const { decision } = await gate.explain({ repository, tag, manifest, hosts: hostsOf(ctx) }, { signatures: false });
            if (!decision.allowed) refused.push({ repository, tag, digest, reason: decision.message });
          }
          if (truncated || names.length < 500) break;
          last = names[names.length - 1]!.name;
        }
        if (truncated) break;
      }
      jsonBody(ctx, { project, judged, truncated, refused });
    },
  };
}
