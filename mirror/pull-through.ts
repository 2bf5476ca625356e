// Pull-through for mirror projects: what a pull asks for and this registry does not hold is
// fetched from the project's upstream, verified, stored and served as if pushed.
//   - Manifests by digest are fetched once (their bytes must hash to the digest). Manifests by tag
//     are asked of the upstream again once the tag was last checked more than the tag TTL ago
//     (REGISTRY_PROXY_TAGTTL): a HEAD first, the manifest only when the tag moved. An index's
//     platform manifests come with it (small, and the gate reads their signatures), each with its
//     signatures; blobs come when a client asks for them.
//   - When the upstream cannot be reached, what is cached is served and the log says so.
//   - Concurrent requests for one manifest or one blob share one upstream fetch (blob-flight.ts).
//   - A fetch belongs to the project's mirror settings it started under (the upstream, its
//     credentials, where signatures are read): a pull after they changed neither joins it nor is
//     answered from a tag check it made, and what it brings is stored only while they are the
//     same. Moved away from an upstream (or mirroring ended) during a slow fetch, its manifest and
//     blob were stored and linked afterwards, and later pulls got them (adversarial testing).
// The upstream's name of `<project>/<path>` is `<namespace>/<path>` (mirror/upstream.ts).
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createLru } from '../storage/lru.js';
import type { Logger } from 'pino';
import { projectOf } from '../auth/authorize.js';
import type { Blobs } from '../storage/blobs.js';
import { parseDigest, type ParsedDigest } from '../storage/digest.js';
import { isIndexMediaType, manifestRecordOf, parseManifest } from '../storage/manifest-parse.js';
import type { ManifestRecord, MetadataStore } from '../storage/metadata-store.js';
import type { MirrorSettings, ProjectStore } from '../storage/project-store.js';
import type { Signatures } from '../sigstore/signatures.js';
import { FlightAbandonedError, startBlobFlight, type BlobFlight } from './blob-flight.js';
import { fetchUpstreamSignatures, type SignatureFetchReport } from './upstream-signatures.js';
import { abandonBody, createUpstream, UpstreamError, UpstreamUnavailableError, type Upstream } from './upstream.js';

/** Blobs of signature artifacts (cosign payloads) are copied with their manifest; real ones are small. */
const ARTIFACT_BLOB_LIMIT = 4 * 1024 * 1024;

/**
 * How many request timeouts (REGISTRY_PROXY_TIMEOUT) copying one signature artifact's blobs may
 * take in all. The timeout bounds each wait for bytes, not a whole body: a `.sig` layer sent a
 * byte a second held every pull of its tag past 40 s (it may say up to 4 MiB: 48 days; adversarial
 * testing). Signatures are copied as well as the upstream lets: one that is too slow is left out,
 * and a signed-only project then refuses what it alone would have admitted.
 */
const ARTIFACT_COPY_TIMEOUTS = 4;

/**
 * The most bytes fetched for a blob whose size no descriptor gave (a GET by digest alone) into a
 * project without a quota, unless the registry says otherwise (`maxBlobBytes`): an upstream that
 * streams without end, or announces a TiB, must not fill the disk (adversarial testing). Layers of
 * large images (CUDA, ML frameworks) reach a few GiB.
 */
export const DEFAULT_MAX_BLOB_BYTES = 8 * 1024 * 1024 * 1024;

/** How long a stored blob's finished fetch is still joined (see blob()). */
const FINISHED_FLIGHT_MS = 10_000;

// What one manifest fetch may bring from the upstream with it: an index's children are copied
// before the index is saved, so an upstream chose how deep and how wide a pull went. A chain of 150
// indexes padded to 4 MiB each held 1.5 GB of memory (every level waits for the one below), and an
// index of 1,000 manifests made one anonymous pull 3,000 upstream requests and 1,000 stored rows
// (adversarial testing). Real images nest one index at most (an index of platform manifests, some
// tools an index of such indexes) and list tens of manifests, far below these bounds.
/** Indexes within indexes below the one pulled. */
const MAX_INDEX_NESTING = 1;
/** Manifests one pull fetches, the one asked for included. */
const MAX_MANIFESTS_PER_FETCH = 256;

/** What is left of one pull's allowance (MAX_MANIFESTS_PER_FETCH). */
interface FetchBudget {
  manifests: number;
}
export interface PullThroughDeps {
  projects: Pick<ProjectStore, 'find'>;
  metadata: MetadataStore;
  blobs: Blobs;
  signatures: Pick<Signatures, 'accept' | 'list'>;
  log: Logger;
  /** How long a tag fetched from the upstream is served before the upstream is asked again (a project may say otherwise). */
  tagTtlMs: number;
  /** How long a request to the upstream may wait for its answer. */
  timeoutMs: number;
  /**
   * Throws when linking `size` bytes would take the repository's project past its quota
   * (server/quota.ts): content fetched into a mirror counts as a push would. What it lets through is
   * held against the quota until the returned function is called (once linked, or failed).
   */
  checkQuota: (repository: string, digest: string, size: number, kind?: 'blob' | 'manifest') => Promise<() => Promise<void>>;
  /**
   * How many bytes of a blob may come into the repository's project (server/quota.ts): what is
   * left of its quota, counting what every replica holds, or the blob's size where the project
   * holds it (`held`); undefined without a quota.
   */
  quotaRoom: (
    repository: string,
    digest?: string,
  ) => Promise<{ bytes: number; why: string; held: boolean; error(size: number): Error } | undefined>;
  /** The most bytes of one blob fetched into a project without a quota (default DEFAULT_MAX_BLOB_BYTES). */
  maxBlobBytes?: number;
}

/** A repository of a mirror project, with the upstream it comes from. */
export interface MirrorTarget {
  project: string;
  repository: string;
  /** The repository's path below the project. */
  path: string;
  mirror: MirrorSettings;
  upstream: Upstream;
  /** The settings content is fetched by (sourceOf): fetches, tag checks and stores are the source's. */
  source: string;
}

/** What fetched content is taken from and judged by: another upstream, credentials or signature source is another source. */
function sourceOf(mirror: MirrorSettings): string {
  return JSON.stringify([mirror.upstream, mirror.credentials ?? null, mirror.lookaside ?? null, mirror.useExtension]);
}

export interface PullThrough {
  /** The mirror a repository belongs to; undefined outside mirror projects. */
  target(repository: string): Promise<MirrorTarget | undefined>;
  /** The manifest a tag or digest names, fetched when missing or (a tag) due for a check. */
  manifest(target: MirrorTarget, reference: string, log: Logger): Promise<ManifestRecord | undefined>;
  /**
   * Starts, or joins, the upstream fetch of a blob; `size` is what a descriptor says it is (the
   * upstream must send exactly that), else a ceiling applies (see ceiling()).
   */
  blob(target: MirrorTarget, digest: ParsedDigest, size?: number): BlobFlight;
  /** The size of a blob the upstream holds (HEAD), undefined when it has none. */
  blobSize(target: MirrorTarget, digest: ParsedDigest): Promise<number | undefined>;
  /** Fetches the upstream's signatures of a manifest held here. */
  refreshSignatures(target: MirrorTarget, digest: string, log: Logger): Promise<SignatureFetchReport>;
  /** How many simple signatures a manifest has here. */
  signatureCount(target: MirrorTarget, digest: string): Promise<number>;
  /** Forgets when a tag was checked (for `signet mirror run`, which always asks). */
  forgetTag(target: MirrorTarget, tag: string): void;
}

/** A manifest the upstream sent, as strictly as a pushed one; garbage is the upstream's failure. */
function parseUpstreamManifest(target: MirrorTarget, content: Buffer, mediaType: string): ReturnType<typeof parseManifest> {
  try {
    return parseManifest(content, mediaType);
  } catch (err) {
    throw new UpstreamError(target.upstream.url, `sent a manifest this registry refuses: ${(err as Error).message}`);
  }
}

export function createPullThrough(deps: PullThroughDeps): PullThrough {
  const { projects, metadata, blobs } = deps;
  const maxBlobBytes = deps.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES;
  const limitWhy = `the ${maxBlobBytes} bytes this registry fetches for one blob`;
  const upstreams = new Map<string, { key: string; upstream: Upstream }>();
  /**
   * When each tag was last confirmed with the upstream, with the digest the check found: a check
   * vouches for that manifest only, not for whatever the tag names since (moved from A to B and
   * back, A's check still fresh vouched for the manifest B had stored; adversarial testing).
   */
  const checked = createLru<string, { until: number; digest: string }>(100_000);
  const manifestFetches = new Map<string, Promise<ManifestRecord | undefined>>();
  const blobFlights = new Map<string, BlobFlight>();

  /** The key of what a target fetches or checks: its source's, in its repository. */
  const keyOf = (target: MirrorTarget, what: string): string => `${target.source}\u0000${target.repository}\u0000${what}`;

  function upstreamOf(project: string, mirror: MirrorSettings): Upstream {
    const key = JSON.stringify([mirror.upstream, mirror.credentials ?? null]);
    const known = upstreams.get(project);
    if (known?.key === key) return known.upstream;
    const upstream = createUpstream({
      url: mirror.upstream,
      ...(mirror.credentials ? { credentials: mirror.credentials } : {}),
      timeoutMs: deps.timeoutMs,
    });
    upstreams.set(project, { key, upstream });
    return upstream;
  }

  /**
   * Throws, so nothing is stored, when the project no longer mirrors from the source the fetch
   * started with: mirroring ended, or another upstream, credentials or signature source.
   */
  async function requireSource(target: MirrorTarget): Promise<void> {
    const mirror = (await projects.find(target.project))?.mirror;
    if (!mirror || sourceOf(mirror) !== target.source) {
      throw new UpstreamUnavailableError(
        target.upstream.url,
        `project ${target.project}'s mirror settings changed while this was fetched; nothing of it was stored, try again`,
      );
    }
  }

  /** Puts a verified stream into storage and links it into the repository, while the source is the project's. */
  async function storeBlob(
    target: MirrorTarget,
    digest: ParsedDigest,
    body: Readable,
    size: number | undefined,
    onHashed: (sha256: string) => void,
  ): Promise<void> {
    const uploadId = randomUUID();
    let quotaHeld: (() => Promise<void>) | undefined;
    try {
      const chunk = await blobs.writeChunk(uploadId, 0, body, { onHashed });
      // Checked again now, and held until linked: the check before the fetch (blob() below) judged
      // it alone, not against the other fetches and pushes of the project finishing meanwhile, and
      // an upstream that did not say the size was not checked at all.
      quotaHeld = await deps.checkQuota(target.repository, digest.digest, chunk.size);
      await requireSource(target);
      await blobs.commit(uploadId, [chunk], digest, {
        ...(size !== undefined ? { expectedSize: size } : {}),
        link: (place) => metadata.blobs.save(target.repository, digest.digest, chunk.size, { place }),
      });
    } catch (err) {
      await blobs.removeUpload(uploadId).catch(() => undefined);
      throw err;
    } finally {
      await quotaHeld?.();
    }
  }

  /**
   * The most bytes a blob may have here: what is left of the project's quota when it has one (a
   * larger blob could not be linked anyway), else the registry's limit.
   */
  async function ceiling(target: MirrorTarget, digest: string): Promise<{ bytes: number; why: string }> {
    // With a quota: what is left of it, or the size of the blob where the project holds it already.
    return (await deps.quotaRoom(target.repository, digest)) ?? { bytes: maxBlobBytes, why: limitWhy };
  }

  function blob(target: MirrorTarget, digest: ParsedDigest, size?: number): BlobFlight {
    const key = keyOf(target, digest.digest);
    const running = blobFlights.get(key);
    if (running) return running;
    const upstreamUrl = target.upstream.url;
    const flight = startBlobFlight({
      digest,
      start: async () => {
        const found = await target.upstream.blob(target.path, digest.digest);
        if (!found) return { kind: 'missing' };
        try {
          // A descriptor's size is what the blob is: an upstream announcing another is not sending it.
          if (size !== undefined && found.size !== undefined && found.size !== size) {
            throw new UpstreamError(upstreamUrl, `announced ${found.size} bytes for blob ${digest.digest}, whose descriptor says ${size}`);
          }
          const announced = found.size ?? size;
          // No size said: the ceiling bounds what may arrive (the quota's figures are read once, here).
          if (announced === undefined)
            return { kind: 'found', size: undefined, body: found.body, max: await ceiling(target, digest.digest) };
          // Over quota: every pull waiting on this fetch is refused (403 DENIED, as Harbor refuses a
          // proxy cache pull that would exceed its project's quota) before a byte is sent or stored.
          // Without a quota, the registry's limit applies.
          const room = await deps.quotaRoom(target.repository, digest.digest);
          if (room) {
            if (!room.held && announced > room.bytes) throw room.error(announced);
          } else if (announced > maxBlobBytes) {
            throw new UpstreamError(upstreamUrl, `announced ${announced} bytes for blob ${digest.digest}, more than ${limitWhy}`);
          }
          return { kind: 'found', size: announced, body: found.body };
        } catch (err) {
          abandonBody(found.body);
          throw err;
        }
      },
      store: (body, size, onHashed) => storeBlob(target, digest, body, size, onHashed),
      retire: () => {
        if (blobFlights.get(key) === flight) blobFlights.delete(key);
      },
      fault: (reason) => new UpstreamError(upstreamUrl, reason),
      stallMs: deps.timeoutMs,
    });
    blobFlights.set(key, flight);
    void flight.done.then(
      (outcome) => {
        // A stored blob's flight stays a moment: a pull that missed the blob in storage just before
        // it was linked (its clients were sent the last bytes before the fsync and the link) would
        // otherwise find no flight and fetch the blob from the upstream again. Joining the finished
        // flight, it is served from storage.
        if (outcome === 'missing') {
          if (blobFlights.get(key) === flight) blobFlights.delete(key);
          return;
        }
        setTimeout(() => {
          if (blobFlights.get(key) === flight) blobFlights.delete(key);
        }, FINISHED_FLIGHT_MS).unref();
      },
      (err: unknown) => {
        if (blobFlights.get(key) === flight) blobFlights.delete(key);
        if (err instanceof FlightAbandonedError) {
          deps.log.info({ repository: target.repository, digest: digest.digest, upstream: upstreamUrl }, err.message);
          return;
        }
        // Clients that were sent the bytes do not see a storage failure after the bytes matched.
        // Logged once here, with the upstream to blame; the clients it cut are not (server/app.ts).
        deps.log.warn(
          { err, repository: target.repository, digest: digest.digest, upstream: upstreamUrl },
          'failed to fetch and store a blob from the upstream',
        );
      },
    );
    return flight;
  }

  /** Copies a small artifact (a cosign `.sig` manifest, a signature referrer) with its blobs, under `tag` if any. */
  async function copyArtifact(target: MirrorTarget, reference: string, tag: string | undefined): Promise<boolean> {
    const known = parseDigest(reference);
    if (known && (await metadata.manifests.find(target.repository, known.digest))) return true;
    const fetched = await target.upstream.manifest(target.path, reference);
    if (!fetched) return false;
    const parsed = parseUpstreamManifest(target, fetched.content, fetched.mediaType);
    const present = await metadata.blobs.findMany(
      target.repository,
      parsed.references.filter((r) => r.kind === 'blob').map((r) => r.digest),
    );
    for (const ref of parsed.references) {
      if (ref.kind !== 'blob' || present.has(ref.digest)) continue;
      const digest = parseDigest(ref.digest);
      if (!digest || ref.size > ARTIFACT_BLOB_LIMIT)
        throw new UpstreamError(target.upstream.url, `${reference} names a blob this mirror does not copy`);
      // Its size said: an upstream sending more is cut there (a `.sig` layer of 100 bytes that
      // streamed without end held the manifest GET and filled the disk; adversarial testing).
      const flight = blob(target, digest, ref.size);
      // One deadline says both how long the copy wants the blob and how long it waits for it.
      const deadlineMs = ARTIFACT_COPY_TIMEOUTS * deps.timeoutMs;
      const deadline = AbortSignal.timeout(deadlineMs);
      flight.want(deadline);
      const late = new Promise<never>((_, reject) => {
        const tooSlow = (): void =>
          reject(
            new UpstreamUnavailableError(target.upstream.url, `blob ${ref.digest} of ${reference} took more than ${deadlineMs / 1000} s`),
          );
        deadline.addEventListener('abort', tooSlow, { once: true });
      });
      // Promise.race handles `late`: rejected after `done` settled, it is no unhandled rejection.
      if ((await Promise.race([flight.done, late])) === 'missing')
        throw new UpstreamError(target.upstream.url, `${reference} names blob ${ref.digest}, which it does not hold`);
    }
    await save(target, fetched.digest, fetched.content, parsed, tag, false);
    return true;
  }

  async function save(
    target: MirrorTarget,
    digest: string,
    content: Buffer,
    parsed: ReturnType<typeof parseManifest>,
    tag: string | undefined,
    blobsPending: boolean,
  ): Promise<ManifestRecord> {
    const record = manifestRecordOf(digest, content, parsed);
    const quotaHeld = await deps.checkQuota(target.repository, digest, content.length, 'manifest');
    try {
      await requireSource(target);
      await metadata.manifests.save(target.repository, record, parsed.references, tag, { blobsPending });
    } finally {
      await quotaHeld();
    }
    return record;
  }

  async function refreshSignatures(target: MirrorTarget, digest: string, log: Logger): Promise<SignatureFetchReport> {
    const report = await fetchUpstreamSignatures(
      { signatures: deps.signatures, copyArtifact: (reference, tag) => copyArtifact(target, reference, tag) },
      target.upstream,
      { ...(target.mirror.lookaside ? { lookaside: target.mirror.lookaside } : {}), useExtension: target.mirror.useExtension },
      { repository: target.repository, path: target.path, digest },
      log,
    );
    if (report.stored > 0) log.info({ repository: target.repository, digest, ...report }, 'stored upstream signatures');
    return report;
  }

  /** Fetches a manifest (and an index's platform manifests) with signatures; stores it under `tag`. */
  async function fetchManifest(
    target: MirrorTarget,
    reference: string,
    tag: string | undefined,
    log: Logger,
    budget: FetchBudget = { manifests: MAX_MANIFESTS_PER_FETCH },
    nesting = 0,
  ): Promise<ManifestRecord | undefined> {
    budget.manifests -= 1;
    const fetched = await target.upstream.manifest(target.path, reference);
    if (!fetched) return undefined;
    const parsed = parseUpstreamManifest(target, fetched.content, fetched.mediaType);
    if (isIndexMediaType(parsed.mediaType)) {
      if (nesting > MAX_INDEX_NESTING) {
        throw new UpstreamError(target.upstream.url, `index ${fetched.digest} is nested deeper than ${MAX_INDEX_NESTING + 1} indexes`);
      }
      const children = [...new Set(parsed.references.filter((r) => r.kind === 'manifest').map((r) => r.digest))];
      const held = await metadata.manifests.findMany(target.repository, children);
      const missing = children.filter((child) => !held.has(child));
      // Refused before a child is fetched: an index this wide is never served whole.
      if (missing.length > budget.manifests) {
        throw new UpstreamError(
          target.upstream.url,
          `index ${fetched.digest} lists ${missing.length} manifests this mirror does not hold, more than the ${MAX_MANIFESTS_PER_FETCH} one pull fetches`,
        );
      }
      for (const child of missing) {
        if (!(await fetchManifest(target, child, undefined, log, budget, nesting + 1))) {
          throw new UpstreamError(target.upstream.url, `index ${fetched.digest} lists ${child}, which it does not hold`);
        }
      }
    }
    const record = await save(target, fetched.digest, fetched.content, parsed, tag, true);
    await refreshSignatures(target, fetched.digest, log);
    log.info(
      { repository: target.repository, reference, digest: fetched.digest, upstream: target.upstream.url },
      'fetched manifest from upstream',
    );
    return record;
  }

  /** By tag: the local copy while its check is fresh; else the upstream's answer; else the cache. */
  async function manifestByTag(target: MirrorTarget, tag: string, log: Logger): Promise<ManifestRecord | undefined> {
    const key = keyOf(target, tag);
    const localDigest = await metadata.tags.find(target.repository, tag);
    const local = localDigest === undefined ? undefined : await metadata.manifests.find(target.repository, localDigest);
    const check = checked.get(key);
    if (local && check && check.digest === local.digest && check.until > Date.now()) return local;
    try {
      let record: ManifestRecord | undefined;
      const upstreamDigest = local ? await target.upstream.manifestDigest(target.path, tag) : undefined;
      if (local && upstreamDigest === local.digest) {
        record = local;
        await refreshSignatures(target, local.digest, log);
      } else {
        record = await fetchManifest(target, tag, tag, log);
      }
      if (!record) {
        // Gone upstream: nothing is deleted here because it went there.
        if (local)
          log.info(
            { repository: target.repository, tag, upstream: target.upstream.url },
            'tag no longer upstream: serving the cached manifest',
          );
        return local;
      }
      const ttlMs = target.mirror.tagTtlSeconds !== undefined ? target.mirror.tagTtlSeconds * 1000 : deps.tagTtlMs;
      checked.set(key, { until: Date.now() + ttlMs, digest: record.digest });
      return record;
    } catch (err) {
      if (local && err instanceof UpstreamUnavailableError) {
        log.warn(
          { repository: target.repository, tag, upstream: target.upstream.url, reason: err.message },
          'upstream unreachable: serving the cached manifest',
        );
        return local;
      }
      throw err;
    }
  }

  return {
    async target(repository) {
      const project = await projects.find(projectOf(repository));
      if (!project?.mirror || repository === project.name) return undefined;
      return {
        project: project.name,
        repository,
        path: repository.slice(project.name.length + 1),
        mirror: project.mirror,
        upstream: upstreamOf(project.name, project.mirror),
        source: sourceOf(project.mirror),
      };
    },

    async manifest(target, reference, log) {
      const digest = parseDigest(reference);
      if (digest) {
        const local = await metadata.manifests.find(target.repository, digest.digest);
        if (local) return local;
      }
      const key = keyOf(target, reference);
      let running = manifestFetches.get(key);
      if (!running) {
        running = digest ? fetchManifest(target, reference, undefined, log) : manifestByTag(target, reference, log);
        manifestFetches.set(key, running);
        void running.then(
          () => manifestFetches.delete(key),
          () => manifestFetches.delete(key),
        );
      }
      return running;
    },

    blob,

    blobSize: (target, digest) => target.upstream.blobSize(target.path, digest.digest),

    refreshSignatures,

    signatureCount: async (target, digest) => (await deps.signatures.list(target.repository, digest)).length,

    forgetTag(target, tag) {
      checked.delete(keyOf(target, tag));
    },
  };
}
