// The "only signed pulls" gate. In a project with signed_only on, GET and HEAD of a manifest
// succeed only when a signature verifies against a key the project trusts and names what is being
// pulled, checked as the client itself would (containers/image signature/policy_eval_signedby.go
// and policy_reference_match.go, matchRepoDigestOrExact):
//   - key: a trusted OpenPGP primary key or one of its subkeys (or a trusted cosign key);
//   - digest: the signed docker-manifest-digest is the served manifest's digest;
//   - identity: the signed repository is the requested one on one of this registry's public host
//     names; pulled by tag, the signed reference is exactly that tag; pulled by digest, the
//     repository suffices.
// Multi-platform images: clients check the platform manifest they pull by its own signatures,
// under the tag the user typed, and never consult the index's. So an index passes when it has a
// matching signature or one of its platform manifests has one (that manifest is fetched next and
// gated itself). A platform manifest pulled by digest passes with its own signature, or — Signet's
// one deliberate leniency beyond the client — when a verified signature covers an index in the same
// repository that lists it (sound: the signed index names its digest).
// Never gated: signature artifacts (cosign .sig/.att/.sbom tags, signature artifact types).
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { projectOf } from '../auth/authorize.js';
import type { Blobs } from '../storage/blobs.js';
import type { ChangeBus } from '../storage/change-bus.js';
import { parseDigest } from '../storage/digest.js';
import type { ManifestRecord, MetadataStore } from '../storage/metadata-store.js';
import type { ProjectStore } from '../storage/project-store.js';
import { isIndexMediaType } from '../server/manifest-parse.js';
import { OciError } from '../server/errors.js';
import {
  COSIGN_SIG_ARTIFACT,
  COSIGN_TAG_RE,
  cosignLayers,
  cosignSignatureTag,
  parseCosignPayload,
  SIGNATURE_ARTIFACT_TYPES,
  verifyCosignSignature,
} from './cosign.js';
import type { DockerReference } from './docker-reference.js';
import type { KeyStore, TrustSet } from './key-store.js';
import { readSignedMessage, verifySignedMessage } from './openpgp-signature.js';
import { parsePayload } from './payload.js';
import type { Signatures } from './signatures.js';

export interface GateRequest {
  repository: string;
  /** The tag the client asked for; undefined when it pulled by digest. */
  tag?: string;
  manifest: ManifestRecord;
  /** Host names a signed reference may name; asked only when the project is signed-only. */
  hosts: () => string[];
}

/** A request being judged: its host names resolved once. */
type JudgedRequest = Omit<GateRequest, 'hosts'> & { hosts: string[] };

export type GateDecision = { allowed: true } | { allowed: false; message: string; keyIds: string[]; problems: string[] };

export interface PullGate {
  /** Throws PROJECTPOLICYVIOLATION (412) when the project only serves signed images and this one is not. */
  enforce(request: GateRequest): Promise<void>;
  /** Forget cached decisions (keys, signatures or settings changed). */
  invalidate(): void;
}

export interface PullGateDeps {
  projects: ProjectStore;
  keys: KeyStore;
  signatures: Signatures;
  metadata: MetadataStore;
  blobs: Blobs;
  cacheTtlMs: number;
  /** Any change (signatures, keys, settings, manifests, here or on another replica) drops decisions. */
  bus: ChangeBus;
  /** Told of every pull judged in a signed-only project (for metrics). */
  onDecision?: (outcome: 'allowed' | 'refused') => void;
}

const COSIGN_PAYLOAD_LIMIT = 256 * 1024;

interface Evaluation {
  ok: boolean;
  keyIds: Set<string>;
  problems: string[];
  signatures: number;
}

function identityProblem(ref: DockerReference, request: { repository: string; tag?: string; hosts: string[] }): string | undefined {
  const wanted = `${request.repository}${request.tag ? `:${request.tag}` : ''}`;
  if (!request.hosts.includes(ref.host)) return `signed for registry ${ref.host}, not ${request.hosts.join(' or ')}`;
  if (ref.repository !== request.repository) return `signed for repository ${ref.repository}, pulled ${request.repository}`;
  if (request.tag !== undefined && (ref.tag !== request.tag || ref.digest !== undefined)) {
    return `signed for ${ref.tag ? `tag ${ref.tag}` : 'a digest'}${ref.digest && ref.tag ? ' with a digest' : ''}, pulled ${wanted}`;
  }
  return undefined;
}

/** What is wrong with a verified signature's claim for this pull (digest, then identity), if anything. */
function claimProblem(
  claim: { manifestDigest: string; reference: DockerReference },
  digest: string,
  request: { repository: string; tag?: string; hosts: string[] },
): string | undefined {
  if (claim.manifestDigest !== digest) return `signature is for manifest ${claim.manifestDigest}`;
  return identityProblem(claim.reference, request);
}

export function createPullGate(deps: PullGateDeps): PullGate {
  const { projects, keys, signatures, metadata, blobs } = deps;
  let epoch = 0;
  const decisions = new LRUCache<string, GateDecision>({ max: 20_000, ttl: Math.max(deps.cacheTtlMs, 1) });
  const invalidate = (): void => {
    epoch += 1;
    decisions.clear();
  };
  deps.bus.subscribe(invalidate);

  async function readPayload(digest: string): Promise<Buffer | undefined> {
    const parsed = parseDigest(digest);
    if (!parsed) return undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of await blobs.open(parsed)) {
      size += (chunk as Buffer).length;
      if (size > COSIGN_PAYLOAD_LIMIT) return undefined;
      chunks.push(chunk as Buffer);
    }
    const payload = Buffer.concat(chunks);
    return `sha256:${createHash('sha256').update(payload).digest('hex')}` === digest ? payload : undefined;
  }

  /** Cosign signature manifests for a digest: the .sig tag and cosign referrers. */
  async function cosignManifests(repository: string, digest: string): Promise<ManifestRecord[]> {
    const found: ManifestRecord[] = [];
    const tagged = await metadata.tags.find(repository, cosignSignatureTag(digest));
    const candidates = new Set(tagged ? [tagged] : []);
    for (const r of await metadata.manifests.referrers(repository, digest)) {
      if (r.artifactType === COSIGN_SIG_ARTIFACT) candidates.add(r.digest);
    }
    for (const candidate of candidates) {
      const manifest = await metadata.manifests.find(repository, candidate);
      if (manifest) found.push(manifest);
    }
    return found;
  }

  async function evaluate(repository: string, digest: string, tag: string | undefined, hosts: string[], trust: TrustSet): Promise<Evaluation> {
    const result: Evaluation = { ok: false, keyIds: new Set(), problems: [], signatures: 0 };
    const request = { repository, hosts, ...(tag !== undefined ? { tag } : {}) };
    for (const record of await signatures.list(repository, digest)) {
      result.signatures += 1;
      try {
        const signed = await readSignedMessage(record.content);
        result.keyIds.add(signed.signerKeyId.toUpperCase());
        const verification = await verifySignedMessage(signed, trust.openpgp);
        if (!verification.verified) {
          result.problems.push(verification.reason);
          continue;
        }
        const problem = claimProblem(parsePayload(verification.payload), digest, request);
        if (problem) {
          result.problems.push(problem);
          continue;
        }
        result.ok = true;
        return result;
      } catch (err) {
        result.problems.push(`unreadable signature: ${(err as Error).message}`);
      }
    }
    for (const manifest of await cosignManifests(repository, digest)) {
      for (const layer of cosignLayers(manifest.content)) {
        result.signatures += 1;
        const payload = await readPayload(layer.payloadDigest).catch(() => undefined);
        if (!payload) {
          result.problems.push('cosign signature payload is missing');
          continue;
        }
        const key = verifyCosignSignature(payload, layer.signature, trust.cosign);
        if (!key) {
          result.keyIds.add('cosign (untrusted key)');
          result.problems.push('cosign signature by a key that is not trusted');
          continue;
        }
        result.keyIds.add(`cosign:${key.fingerprint.slice(0, 16).toUpperCase()}`);
        try {
          const problem = claimProblem(parseCosignPayload(payload), digest, request);
          if (problem) {
            result.problems.push(problem);
            continue;
          }
          result.ok = true;
          return result;
        } catch (err) {
          result.problems.push((err as Error).message);
        }
      }
    }
    return result;
  }

  async function decide(request: JudgedRequest, trust: TrustSet): Promise<GateDecision> {
    const { repository, tag, manifest, hosts } = request;
    const seen: Evaluation[] = [];
    const admit = async (digest: string, asTag: string | undefined): Promise<boolean> => {
      const evaluation = await evaluate(repository, digest, asTag, hosts, trust);
      seen.push(evaluation);
      return evaluation.ok;
    };

    if (await admit(manifest.digest, tag)) return { allowed: true };
    if (isIndexMediaType(manifest.mediaType)) {
      const children = ((JSON.parse(manifest.content.toString('utf8')) as { manifests?: { digest?: string }[] }).manifests ?? [])
        .map((m) => m.digest)
        .filter((d): d is string => typeof d === 'string');
      for (const child of children) if (await admit(child, tag)) return { allowed: true };
    } else if (tag === undefined) {
      for (const parent of await metadata.manifests.parents(repository, manifest.digest)) {
        if (await admit(parent, undefined)) return { allowed: true };
      }
    }

    const keyIds = [...new Set(seen.flatMap((e) => [...e.keyIds]))];
    const problems = [...new Set(seen.flatMap((e) => e.problems))];
    const total = seen.reduce((n, e) => n + e.signatures, 0);
    const wanted = `${repository}${tag ? `:${tag}` : `@${manifest.digest}`}`;
    let message: string;
    if (total === 0) message = `${wanted} is not signed; project ${projectOf(repository)} only serves signed images`;
    else if (trust.openpgp.length + trust.cosign.length === 0) message = `project ${projectOf(repository)} trusts no keys, so no signature of ${wanted} can be accepted`;
    else message = `no trusted signature matches ${wanted}: ${problems.join('; ')}`;
    if (keyIds.length > 0 && total > 0) message += ` (signatures seen from ${keyIds.join(', ')})`;
    return { allowed: false, message, keyIds, problems };
  }

  /** The decision for a pull from a signed-only project, from the cache when it is fresh. */
  async function judge(request: JudgedRequest, project: string): Promise<GateDecision> {
    const { manifest, tag } = request;
    if (tag !== undefined && COSIGN_TAG_RE.test(tag)) return { allowed: true };
    if (manifest.artifactType && SIGNATURE_ARTIFACT_TYPES.has(manifest.artifactType)) return { allowed: true };
    if (!isIndexMediaType(manifest.mediaType) && cosignLayers(manifest.content).length > 0) return { allowed: true };

    const cacheKey = [epoch, request.repository, manifest.digest, tag ?? '', request.hosts.join(',')].join('\u0000');
    let decision = decisions.get(cacheKey);
    if (!decision) {
      const before = epoch;
      decision = await decide(request, await keys.trusted(project));
      if (before === epoch) decisions.set(cacheKey, decision);
    }
    return decision;
  }

  return {
    async enforce(request) {
      const project = await projects.find(projectOf(request.repository));
      if (!project?.signedOnly) return;
      const decision = await judge({ ...request, hosts: request.hosts() }, project.name);
      deps.onDecision?.(decision.allowed ? 'allowed' : 'refused');
      if (!decision.allowed) {
        throw new OciError('PROJECTPOLICYVIOLATION', decision.message, { keyIds: decision.keyIds, problems: decision.problems });
      }
    },
    invalidate,
  };
}
