// Signatures of a mirrored manifest, fetched from the upstream and stored here as if pushed:
//   - the lookaside (`<base>/<upstream path>@sha256=<hex>/signature-<N>`, N from 1 until the first
//     404, as containers/image reads it: docker/lookaside.go), when the mirror names a base URL;
//   - the signature API extension, when the mirror reads it and the upstream's /v2/ advertises it;
//   - cosign's `sha256-<hex>.sig` tag (a manifest with its small payload blobs);
//   - OCI 1.1 referrers of signature artifact types (cosign's, sigstore bundles, Notation), when
//     the upstream answers the referrers API (copied by digest, with their subject).
// Each simple signature goes through the same acceptance as a pushed one (signatures.accept): one
// that does not parse is not stored, one by a key the project does not trust is stored as
// untrusted, and neither ever opens the gate. A failing source is logged; the pull goes on.
import type { Logger } from 'pino';
import { cosignSignatureTag } from '../sigstore/cosign.js';
import type { Signatures } from '../sigstore/signatures.js';
import type { Upstream } from './upstream.js';

/** containers/image's limits: 128 signatures, 4 MiB each on the lookaside, 4 MiB for the extension list. */
const MAX_SIGNATURES = 128;
const LOOKASIDE_LIMIT = 4 * 1024 * 1024;
const EXTENSION_LIMIT = 4 * 1024 * 1024;

export interface SignatureSources {
  lookaside?: string;
  useExtension: boolean;
}

export interface SignatureFetchReport {
  stored: number;
  present: number;
  refused: number;
}

export interface UpstreamSignatureDeps {
  signatures: Pick<Signatures, 'accept'>;
  /**
   * Copies a small artifact manifest with its blobs: by tag (the cosign `.sig` tag), stored under
   * it, or by digest (a referrer); false when the upstream has none.
   */
  copyArtifact: (reference: string, tag: string | undefined) => Promise<boolean>;
}

/** The artifact types of signatures a referrer may carry; other referrers (SBOMs...) are not copied. */
const SIGNATURE_ARTIFACT_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.dev.cosign.artifact.sig.v1+json',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/vnd.cncf.notary.signature',
]);
const MAX_REFERRERS = 16;

interface Fetch {
  deps: UpstreamSignatureDeps;
  upstream: Upstream;
  repository: string;
  path: string;
  digest: string;
  log: Logger;
  /** Stores one simple signature as a pushed one would be (counted in the report). */
  keep(untrusted: Buffer, source: string): Promise<void>;
}

/** `<base>/<upstream path>@sha256=<hex>/signature-<N>`, N from 1 until the first 404. */
async function fromLookaside(f: Fetch, lookaside: string): Promise<void> {
  const [algorithm, hex] = f.digest.split(':');
  const base = `${lookaside}/${f.upstream.pathOf(f.path)}@${algorithm}=${hex}`;
  for (let n = 1; n <= MAX_SIGNATURES; n += 1) {
    const res = await f.upstream.getPlain(`${base}/signature-${n}`, LOOKASIDE_LIMIT);
    if (res.status === 404) return;
    if (!res.body) {
      f.log.warn(
        { repository: f.repository, digest: f.digest, status: res.status, lookaside },
        'upstream lookaside answered neither 200 nor 404',
      );
      return;
    }
    await f.keep(res.body, `lookaside signature-${n}`);
  }
}

/** The signature API extension, read only when the upstream's /v2/ advertises it. */
async function fromExtension(f: Fetch): Promise<void> {
  if (!(await f.upstream.supportsSignatureExtension())) return;
  const body = (await f.upstream.getJson(`/extensions/v2/{path}/signatures/${f.digest}`, f.path, EXTENSION_LIMIT)) as
    { signatures?: { type?: unknown; content?: unknown }[] } | undefined;
  for (const signature of (body?.signatures ?? []).slice(0, MAX_SIGNATURES)) {
    if (signature.type === 'atomic' && typeof signature.content === 'string') {
      await f.keep(Buffer.from(signature.content, 'base64'), 'signature extension');
    }
  }
}

/** Referrers of signature artifact types, copied by digest. */
async function fromReferrers(f: Fetch): Promise<void> {
  const index = (await f.upstream.getJson(`/v2/{path}/referrers/${f.digest}`, f.path, EXTENSION_LIMIT)) as
    { manifests?: { digest?: unknown; artifactType?: unknown }[] } | undefined;
  const wanted = (index?.manifests ?? []).filter(
    (m): m is { digest: string; artifactType: string } =>
      typeof m.digest === 'string' && typeof m.artifactType === 'string' && SIGNATURE_ARTIFACT_TYPES.has(m.artifactType),
  );
  for (const referrer of wanted.slice(0, MAX_REFERRERS)) await f.deps.copyArtifact(referrer.digest, undefined);
}

export async function fetchUpstreamSignatures(
  deps: UpstreamSignatureDeps,
  upstream: Upstream,
  sources: SignatureSources,
  target: { repository: string; path: string; digest: string },
  log: Logger,
): Promise<SignatureFetchReport> {
  const report: SignatureFetchReport = { stored: 0, present: 0, refused: 0 };
  const { repository, digest } = target;
  const keep = async (untrusted: Buffer, source: string): Promise<void> => {
    try {
      const result = await deps.signatures.accept(repository, digest, untrusted, { actor: 'mirror', untrustedAllowed: true });
      if (result.result === 'created') report.stored += 1;
      else if (result.result === 'duplicate') report.present += 1;
      else {
        report.refused += 1;
        log.warn({ repository, digest, source, result: result.result }, 'upstream signature not stored');
      }
    } catch (err) {
      report.refused += 1;
      log.warn({ repository, digest, source, reason: (err as Error).message }, 'upstream signature refused');
    }
  };
  const f: Fetch = { deps, upstream, ...target, log, keep };
  const tag = cosignSignatureTag(digest);
  // Each source on its own: one failing (logged) does not keep the others from being read.
  const steps: [string, (() => Promise<unknown>) | undefined][] = [
    ['could not read the upstream lookaside', sources.lookaside ? () => fromLookaside(f, sources.lookaside!) : undefined],
    ['could not read the upstream signature extension', sources.useExtension ? () => fromExtension(f) : undefined],
    ['could not copy the upstream cosign signature', () => deps.copyArtifact(tag, tag)],
    // Registries without the referrers API answer 404 (none) or refuse the path: not worth a warning.
    ['could not copy upstream referrers', () => fromReferrers(f)],
  ];
  for (const [failure, step] of steps) {
    if (!step) continue;
    try {
      await step();
    } catch (err) {
      const level = failure.includes('referrers') ? 'debug' : 'warn';
      log[level]({ repository, digest, reason: (err as Error).message }, failure);
    }
  }
  return report;
}
