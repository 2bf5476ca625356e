// Scheduled (or asked-for) mirroring: the tags of one upstream repository that match a glob are
// copied here with their blobs and signatures, as a pull of each would fetch them; a tag already
// here at the upstream's digest, with its blobs, is skipped (its signatures are still refreshed,
// since the upstream may have added some). Nothing is deleted because it went from the upstream.
import type { Logger } from 'pino';
import { parseDigest } from '../storage/digest.js';
import { isIndexMediaType, parseManifest } from '../storage/manifest-parse.js';
import type { ManifestRecord, MetadataStore } from '../storage/metadata-store.js';
import type { MirrorTarget, PullThrough } from './pull-through.js';

export interface MirrorRunRequest {
  /** The repository's path below the project (the upstream's below its namespace). */
  repository: string;
  /** Glob over tag names: `*` any run of characters, `?` one. */
  tags: string;
}

export interface MirrorProgress {
  tag: string;
  done: number;
  total: number;
  outcome: 'copied' | 'present' | 'failed';
  digest?: string;
  bytes?: number;
  error?: string;
}

export interface MirrorRunReport {
  repository: string;
  matched: number;
  /**
   * Why not every matching tag was considered (the upstream lists more than MAX_TAGS_PER_RUN, or
   * its list has too many pages); the run went on with the tags it had.
   */
  stopped?: string;
  copied: number;
  /** Tags already here at the upstream's digest. */
  skipped: string[];
  failed: { tag: string; error: string }[];
  bytes: number;
  signatures: number;
  durationMs: number;
}

/**
 * Matching tags one run copies at most (a hostile upstream's tag list must not hold the heap); a
 * glob matching more is narrowed, or the run repeated once the first ones are here.
 */
export const MAX_TAGS_PER_RUN = 10_000;

export interface MirrorRunDeps {
  pullThrough: PullThrough;
  metadata: MetadataStore;
  log: Logger;
}

/**
 * Whether `text` matches `glob`: `*` and `?` as in a shell, everything else literal. Matched by
 * hand, not as a regular expression: `^.*.*.*…x$` backtracks exponentially, and a project admin's
 * glob of 40 stars held the event loop indefinitely (adversarial testing). Here a mismatch after
 * a star only moves that star's match on by one character, so the cost is at most the product
 * of the two lengths.
 */
export function matchesGlob(glob: string, text: string): boolean {
  let g = 0;
  let t = 0;
  let star = -1; // the last `*` seen in the glob
  let resume = 0; // where in the text that star's match ends
  while (t < text.length) {
    if (g < glob.length && (glob[g] === '?' || (glob[g] !== '*' && glob[g] === text[t]))) {
      g += 1;
      t += 1;
    } else if (g < glob.length && glob[g] === '*') {
      star = g;
      resume = t;
      g += 1;
    } else if (star >= 0) {
      g = star + 1;
      resume += 1;
      t = resume;
    } else {
      return false;
    }
  }
  while (g < glob.length && glob[g] === '*') g += 1;
  return g === glob.length;
}

/** The blob digests a manifest (and an index's platform manifests) needs that are not linked here. */
async function missingBlobs(
  metadata: MetadataStore,
  repository: string,
  manifest: ManifestRecord,
): Promise<{ digest: string; size: number }[]> {
  const parsed = parseManifest(manifest.content, manifest.mediaType);
  const wanted = parsed.references.filter((r) => r.kind === 'blob');
  if (isIndexMediaType(manifest.mediaType)) {
    for (const child of parsed.references.filter((r) => r.kind === 'manifest')) {
      const record = await metadata.manifests.find(repository, child.digest);
      if (record) wanted.push(...parseManifest(record.content, record.mediaType).references.filter((r) => r.kind === 'blob'));
    }
  }
  const linked = await metadata.blobs.findMany(
    repository,
    wanted.map((r) => r.digest),
  );
  const missing = new Map<string, number>();
  for (const ref of wanted) if (!linked.has(ref.digest)) missing.set(ref.digest, ref.size);
  return [...missing].map(([digest, size]) => ({ digest, size }));
}

/** One tag: skipped when here at the upstream's digest with its blobs, else copied. */
async function mirrorTag(
  deps: MirrorRunDeps,
  target: MirrorTarget,
  tag: string,
): Promise<{ outcome: 'copied' | 'present'; digest: string; bytes: number; signatures: number }> {
  const { metadata, pullThrough, log } = deps;
  const upstreamDigest = await target.upstream.manifestDigest(target.path, tag);
  const localDigest = await metadata.tags.find(target.repository, tag);
  const local = localDigest === undefined ? undefined : await metadata.manifests.find(target.repository, localDigest);
  if (local && upstreamDigest === local.digest && (await missingBlobs(metadata, target.repository, local)).length === 0) {
    const { stored } = await pullThrough.refreshSignatures(target, local.digest, log);
    return { outcome: 'present', digest: local.digest, bytes: 0, signatures: stored };
  }
  pullThrough.forgetTag(target, tag);
  const signaturesBefore = upstreamDigest ? await pullThrough.signatureCount(target, upstreamDigest) : 0;
  const manifest = await pullThrough.manifest(target, tag, log);
  if (!manifest) throw new Error('the upstream no longer has this tag');
  let bytes = 0;
  for (const blob of await missingBlobs(metadata, target.repository, manifest)) {
    const digest = parseDigest(blob.digest);
    if (!digest) continue;
    // With the manifest's size: an upstream sending more (or announcing another) is cut there.
    const flight = pullThrough.blob(target, digest, blob.size);
    // A run wants what it copies whoever else asked for it.
    flight.want();
    if ((await flight.done) === 'missing') throw new Error(`the upstream does not hold blob ${blob.digest}`);
    bytes += blob.size;
  }
  const signatures = (await pullThrough.signatureCount(target, manifest.digest)) - signaturesBefore;
  return { outcome: 'copied', digest: manifest.digest, bytes, signatures };
}

export async function runMirror(
  deps: MirrorRunDeps,
  target: MirrorTarget,
  request: MirrorRunRequest,
  onProgress: (progress: MirrorProgress) => void = () => undefined,
): Promise<MirrorRunReport> {
  const started = Date.now();
  // Matched page by page, at most MAX_TAGS_PER_RUN kept (mirror/upstream.ts tags()).
  const listing = await target.upstream.tags(target.path, { keep: (tag) => matchesGlob(request.tags, tag), max: MAX_TAGS_PER_RUN });
  const tags = listing.tags.sort();
  if (listing.stopped) {
    deps.log.warn(
      { repository: target.repository, tags: request.tags, kept: tags.length, reason: listing.stopped },
      'mirror run reads only part of the upstream tag list',
    );
  }
  const report: MirrorRunReport = {
    repository: target.repository,
    matched: tags.length,
    ...(listing.stopped ? { stopped: `${listing.stopped}: copying the first ${tags.length} matching tag(s) listed` } : {}),
    copied: 0,
    skipped: [],
    failed: [],
    bytes: 0,
    signatures: 0,
    durationMs: 0,
  };
  for (const [i, tag] of tags.entries()) {
    const progress = { tag, done: i + 1, total: tags.length };
    try {
      const { outcome, digest, bytes, signatures } = await mirrorTag(deps, target, tag);
      if (outcome === 'present') report.skipped.push(tag);
      else report.copied += 1;
      report.bytes += bytes;
      report.signatures += signatures;
      onProgress({ ...progress, outcome, digest, ...(outcome === 'copied' ? { bytes } : {}) });
    } catch (err) {
      const error = (err as Error).message;
      report.failed.push({ tag, error });
      deps.log.warn({ repository: target.repository, tag, reason: error }, 'mirroring a tag failed');
      onProgress({ ...progress, outcome: 'failed', error });
    }
  }
  report.durationMs = Date.now() - started;
  return report;
}
