// The "only signed pulls" gate. In a project with signed_only on, GET and HEAD of a manifest
// succeed only when a signature verifies against a key the project trusts and names what is being
// pulled, checked as the client itself would (containers/image signature/policy_eval_signedby.go,
// policy_eval_sigstore.go and policy_reference_match.go):
//   - key: a trusted OpenPGP primary key or one of its subkeys, valid now (sigstore/openpgp-signature.ts),
//     or a trusted cosign key;
//   - digest: the signed docker-manifest-digest is the served manifest's digest;
//   - identity, compared exactly (no case folding), the signed host being one of this registry's
//     names: simple signatures as `signedBy` with `matchRepoDigestOrExact` (pulled by tag, the
//     signed reference is exactly that tag; pulled by digest, the repository suffices); cosign
//     signatures as `sigstoreSigned` with `matchRepository` (`cosign sign` signs a digest and names
//     only the repository), which policy.ts exports for cosign keys. In a mirror project both kinds
//     are matched as `remapIdentity {prefix: <host>/<project>, signedPrefix}` (remap-identity.ts):
//     upstream signatures name the upstream, and that is the rule the project's policy exports
//     (which refuses a signature naming only the repository, and any name the remapping makes
//     non-canonical, whatever the signature).
// Multi-platform images: an index passes with a matching signature of its own (`skopeo copy --all
// --sign-by` signs the list as well as every instance, containers/image copy/multiple.go), or when
// every manifest it lists has one for the same pull (the tag the user typed, as containers/image
// checks the instance it picks). Not when only some do: clients that verify nothing pick a child
// the gate never saw judged for this pull, and some never ask the registry for it (containerd
// fetches a child from its descriptor's `urls` first; containerd 2 takes a descriptor's embedded
// `data`), so a signed child beside an unsigned one got that one run, and an old image signed for
// another tag listed under this one passed too (adversarial testing). Children reached elsewhere
// than here (`urls`, `data`) earn nothing through this route. A platform manifest pulled by
// digest passes with its own signature, or — Signet's one deliberate leniency beyond the client —
// when a verified signature covers an index in the same repository that lists it (sound: the
// signed index names its digest).
// Served without a signature of their own: manifests whose content proves they are signatures and
// nothing else (signature-artifact.ts). Tags, artifact types and layer labels earn nothing.
import { createHash } from 'node:crypto';
import type { LRUCache } from 'lru-cache';
import { createLru } from '../storage/lru.js';
import { projectOf } from '../auth/authorize.js';
import type { ChangeBus } from '../storage/change-bus.js';
import type { ManifestRecord, MetadataStore } from '../storage/metadata-store.js';
import type { Project, ProjectStore } from '../storage/project-store.js';
import { ambiguousFields, isIndexMediaType, jsonObjectOf } from '../storage/manifest-parse.js';
import {
  COSIGN_PAYLOAD_LIMIT,
  COSIGN_SIG_ARTIFACT,
  cosignLayerKey,
  cosignLayers,
  MAX_COSIGN_SIGNATURES,
  cosignSignatureTag,
  parseCosignPayload,
  verifyCosignSignature,
  type CosignLayer,
  type CosignPayload,
} from './cosign.js';
import type { DockerReference } from './docker-reference.js';
import { defaultSignedPrefix, normalise, remappedRepository } from './remap-identity.js';
import type { CosignKey, Keys, TrustSet } from './keys.js';
import { readSignedMessage, verifySignedMessage } from './openpgp-signature.js';
import { parsePayload, type SimpleSigningPayload } from './payload.js';
import type { SignatureArtifacts, SmallBlobReader } from './signature-artifact.js';
import type { SignatureRecord } from '../storage/signature-store.js';
import type { Signatures } from './signatures.js';
import { DomainError } from '../storage/errors.js';

export interface GateRequest {
  repository: string;
  /** The tag the client asked for; undefined when it pulled by digest. */
  tag?: string;
  manifest: ManifestRecord;
  /** Host names a signed reference may name; asked only when the project is signed-only. */
  hosts: () => string[];
}

/** A request being judged: its host names resolved once; in a mirror project, how names are remapped. */
type JudgedRequest = Omit<GateRequest, 'hosts' | 'manifest'> & { hosts: string[]; remap?: Remap };

/** A mirror project's `remapIdentity`: `<host>/<project>` stands for `signedPrefix` (remap-identity.ts). */
interface Remap {
  project: string;
  signedPrefix: string;
}

export type GateDecision =
  { allowed: true; via: 'signature' | 'signature-artifact' } | { allowed: false; message: string; keyIds: string[]; problems: string[] };

/** A pull the project's signing policy refuses (server/errors.ts answers 412 PROJECTPOLICYVIOLATION). */
export class PullRefusedError extends DomainError {
  readonly kind = 'pull-refused';
  constructor(
    message: string,
    readonly keyIds: string[],
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'PullRefusedError';
  }
}

/** One signature of a manifest as the gate judged it (for people: the console and the API). */
export interface SignatureJudgement {
  format: 'simple' | 'cosign';
  /** The signing key's ID (OpenPGP) or `cosign:<fingerprint prefix>`, when known. */
  keyId?: string;
  /** The reference the signature names (for an unverified signature: what it claims). */
  identity?: string;
  signedAt?: Date;
  accepted: boolean;
  /** Why it does not count for this pull, and at which step: the key, or what it names (digest, identity). */
  problem?: string;
  stage?: 'key' | 'claim';
}

/** The gate's decision on a manifest now, as a pull of it would get it, with each signature judged. */
export interface GateExplanation {
  /** Whether the project enforces the decision (signed-only); otherwise it is what would happen. */
  enforced: boolean;
  decision: GateDecision;
  signatures: SignatureJudgement[];
}

export interface PullGate {
  /** Throws PullRefusedError when the project only serves signed images and this one is not. */
  enforce(request: GateRequest): Promise<void>;
  /**
   * The decision `enforce` makes (the same judgement and cache), whether or not the project is
   * signed-only, and every signature of the manifest judged for this pull.
   */
  explain(request: GateRequest, options?: { signatures?: boolean }): Promise<GateExplanation>;
  /** Forget cached decisions (keys, signatures or settings changed). */
  invalidate(): void;
}

export interface PullGateDeps {
  projects: ProjectStore;
  keys: Pick<Keys, 'trusted'>;
  signatures: Signatures;
  metadata: MetadataStore;
  artifacts: SignatureArtifacts;
  readBlob: SmallBlobReader;
  cacheTtlMs: number;
  /** Any change (signatures, keys, settings, manifests, here or on another replica) drops decisions. */
  bus: ChangeBus;
  /** Told of every pull judged in a signed-only project (for metrics). */
  onDecision?: (outcome: 'allowed' | 'refused') => void;
  /** Told of every signature checked against a trust set (not answered from the verification cache). */
  onVerification?: (format: 'simple' | 'cosign') => void;
}

// What one decision may cost. Everything a decision reads is chosen by whoever pushes: a `.sig`
// manifest of 18,891 layers naming one 256 KiB payload (4.6 GiB read and hashed), an index listing
// a manifest 20,000 times, each judged anew on every uncached pull, anonymous ones included
// (adversarial testing). So a decision judges each distinct signature once, at most as many per
// digest as containers/image reads (128), and stops at these bounds, refusing with the reason:
// far above what real signing produces (a few signatures of under 2 KiB per digest), far below
// what would hold the server.
/** Distinct signatures judged per digest. */
const MAX_SIGNATURES_PER_DIGEST = MAX_COSIGN_SIGNATURES;
/** Signatures judged per decision, over the manifest and the digests related to it. */
const MAX_SIGNATURES_PER_DECISION = 512;
/** Distinct digests judged beside the manifest's own: an index's children, or a platform manifest's indexes. */
const MAX_RELATED_DIGESTS = 64;
/** The largest cosign referrer read, and how many bytes of them per digest. */
const MAX_COSIGN_MANIFEST_BYTES = 1024 * 1024;
const MAX_COSIGN_MANIFESTS_BYTES = 8 * 1024 * 1024;
/** cosign payload bytes read per decision. */
const MAX_PAYLOAD_BYTES_PER_DECISION = 8 * 1024 * 1024;

/** What is left of a decision's bounds; `spent` says which one ran out. */
interface Budget {
  signatures: number;
  payloadBytes: number;
  spent?: string;
  /** The earliest expiry (ms since the epoch) of a signature accepted in this decision: it is not cached past it. */
  until?: number;
}

const newBudget = (): Budget => ({ signatures: MAX_SIGNATURES_PER_DECISION, payloadBytes: MAX_PAYLOAD_BYTES_PER_DECISION });

/** One signature judged for one pull: accepted, or why not; with the key that made it when known. */
type Outcome = ({ accepted: true; keyId: string } | { accepted: false; keyId?: string; problem: string; stage: 'key' | 'claim' }) &
  OutcomeDetail;

/** What a signature says, for showing it: its format, claimed identity and time. */
interface OutcomeDetail {
  format: 'simple' | 'cosign';
  identity?: string;
  signedAt?: Date;
}

interface Evaluation {
  ok: boolean;
  keyIds: Set<string>;
  problems: string[];
  signatures: number;
}

/** A simple signature checked against a trust set: who signed, and what it claims or why it does not count. */
type SimpleVerification = { keyId: string } & ({ claim: SimpleSigningPayload; until?: number } | { problem: string });

/** A cosign signature checked against a trust set: the trusted key it verified with, and its claim (or why that is unreadable). */
type CosignVerification = { key: undefined } | { key: CosignKey; claim: CosignPayload } | { key: CosignKey; unreadable: string };

/** How a signature's identity must match the pull (containers/image's signedIdentity types). */
type IdentityRule = 'matchRepoDigestOrExact' | 'matchRepository';

/**
 * A mirror project: the policy it exports is `remapIdentity`, which matches as
 * `matchRepoDigestOrExact` after the remapping, whatever the kind of signature.
 */
function remappedProblem(signed: DockerReference, request: JudgedRequest, remap: Remap): string | undefined {
  const ref = normalise(signed);
  const expected = remappedRepository(request.repository, remap.project, remap.signedPrefix);
  if (!expected) return `${request.repository} is not under mirror project ${remap.project}`;
  if (typeof expected === 'string') return expected;
  if (ref.host !== expected.host || ref.repository !== expected.repository) {
    return `signed for ${ref.host}/${ref.repository}, which is not ${expected.host}/${expected.repository} (what ${request.repository} mirrors)`;
  }
  // matchRepoDigestOrExact refuses a signature naming only the repository, whatever is pulled
  // (containers/image, matchRepoDigestOrExactReferenceValues: IsNameOnly(signature) -> false):
  // what `cosign sign` writes never opens a mirror project, as the exported policy decides.
  if (ref.tag === undefined && ref.digest === undefined) {
    return `signed for the repository ${ref.host}/${ref.repository} only (no tag or digest), which remapIdentity never accepts`;
  }
  if (request.tag === undefined) return undefined;
  if (ref.tag !== request.tag || ref.digest !== undefined) {
    const signedFor = ref.tag ? `tag ${ref.tag}${ref.digest ? ' with a digest' : ''}` : 'a digest';
    return `signed for ${signedFor}, pulled ${request.repository}:${request.tag}`;
  }
  return undefined;
}

function identityProblem(ref: DockerReference, request: JudgedRequest, rule: IdentityRule): string | undefined {
  if (request.remap) return remappedProblem(ref, request, request.remap);
  if (!request.hosts.includes(ref.host)) return `signed for registry ${ref.host}, not ${request.hosts.join(' or ')}`;
  if (ref.repository !== request.repository) return `signed for repository ${ref.repository}, pulled ${request.repository}`;
  if (rule === 'matchRepository' || request.tag === undefined) return undefined;
  if (ref.tag !== request.tag || ref.digest !== undefined) {
    const signedFor = ref.tag ? `tag ${ref.tag}${ref.digest ? ' with a digest' : ''}` : 'a digest';
    return `signed for ${signedFor}, pulled ${request.repository}:${request.tag}`;
  }
  return undefined;
}

/** What is wrong with a verified signature's claim for this pull (digest, then identity), if anything. */
function claimProblem(
  claim: { manifestDigest: string; reference: DockerReference },
  digest: string,
  request: JudgedRequest,
  rule: IdentityRule,
): string | undefined {
  if (claim.manifestDigest !== digest) return `signature is for manifest ${claim.manifestDigest}`;
  return identityProblem(claim.reference, request, rule);
}

function toJudgement(outcome: Outcome): SignatureJudgement {
  return {
    format: outcome.format,
    ...(outcome.keyId !== undefined ? { keyId: outcome.keyId } : {}),
    ...(outcome.identity !== undefined ? { identity: outcome.identity } : {}),
    ...(outcome.signedAt !== undefined ? { signedAt: outcome.signedAt } : {}),
    accepted: outcome.accepted,
    ...(outcome.accepted ? {} : { problem: outcome.problem, stage: outcome.stage }),
  };
}

/**
 * Drops every entry (their keys hold the epoch, so none could be read again; this frees them).
 * LRUCache.clear() resets its arrays over the most entries it has held, whatever it holds now:
 * 0.13 ms of the server's CPU per manifest push, 524 ms in a profile of 4,000 pushes (every write
 * invalidates), against nothing when a few entries are deleted one by one.
 */
function empty<V extends object>(cache: LRUCache<string, V>): void {
  if (cache.size > 1024) cache.clear();
  else for (const key of [...cache.keys()]) cache.delete(key);
}

export function createPullGate(deps: PullGateDeps): PullGate {
  const { projects, keys, signatures, metadata, artifacts, readBlob } = deps;
  let epoch = 0;
  const decisions = createLru<string, GateDecision>(20_000, { ttlMs: Math.max(deps.cacheTtlMs, 1) });
  const invalidate = (): void => {
    epoch += 1;
    empty(decisions);
  };
  deps.bus.subscribe(invalidate);

  /** Cosign signature manifests for a digest: the .sig tag and cosign referrers. */
  async function cosignManifests(repository: string, digest: string): Promise<ManifestRecord[]> {
    const tagged = await metadata.tags.find(repository, cosignSignatureTag(digest));
    const candidates = new Set(tagged ? [tagged] : []);
    // As many as containers/image reads signatures; their annotations are not needed here.
    const { referrers } = await metadata.manifests.referrers(repository, digest, {
      artifactType: COSIGN_SIG_ARTIFACT,
      limit: MAX_COSIGN_SIGNATURES,
    });
    // Read whole, so bounded: a referrer of cosign's type larger than a real `.sig` manifest ever is
    // (128 signatures with certificates are well under 1 MiB) is not read, nor any past 8 MiB in all.
    let bytes = 0;
    for (const r of referrers) {
      if (r.size > MAX_COSIGN_MANIFEST_BYTES || bytes + r.size > MAX_COSIGN_MANIFESTS_BYTES) continue;
      bytes += r.size;
      candidates.add(r.digest);
    }
    const found: ManifestRecord[] = [];
    for (const candidate of candidates) {
      const manifest = await metadata.manifests.find(repository, candidate);
      if (manifest) found.push(manifest);
    }
    return found;
  }

  /**
   * Signature verifications, the costly part of a decision, per trust set (a new one whenever the
   * project's keys change): the same signature bytes verify the same way whatever the pull names
   * (its tag, the Host it came through), until a trusted key expires (remember() caps the TTL).
   * Only the claim is judged per pull. Every pull through a new Host name is a decision of its own,
   * and an anonymous client choosing them made each one verify every signature again.
   */
  const verifications = createLru<string, SimpleVerification | CosignVerification>(8192, { ttlMs: Math.max(deps.cacheTtlMs, 1) });
  const trustIds = new WeakMap<TrustSet, number>();
  let trustCount = 0;
  /** `verify` runs only on a miss; what it answers undefined (nothing could be checked) is not kept. */
  async function verifiedOnce<V extends SimpleVerification | CosignVerification | undefined>(
    trust: TrustSet,
    what: string,
    verify: () => Promise<V>,
  ): Promise<V> {
    let id = trustIds.get(trust);
    if (id === undefined) trustIds.set(trust, (id = ++trustCount));
    const key = `${id} ${what}`;
    const known = verifications.get(key);
    if (known) return known as V;
    const verified = await verify();
    if (verified !== undefined) remember(verifications, key, verified, trust, 'until' in verified ? verified.until : undefined);
    return verified;
  }

  /** A simple signature: key (valid now), then digest, then identity (matchRepoDigestOrExact). */
  async function judgeSimple(
    record: SignatureRecord,
    digest: string,
    request: JudgedRequest,
    trust: TrustSet,
    budget: Budget,
  ): Promise<Outcome> {
    const detail: OutcomeDetail = { format: 'simple', identity: record.identity, signedAt: record.signedAt };
    try {
      const checked = await verifiedOnce(
        trust,
        `simple ${createHash('sha256').update(record.content).digest('hex')}`,
        async (): Promise<SimpleVerification> => {
          deps.onVerification?.('simple');
          const signed = await readSignedMessage(record.content);
          const keyId = signed.signerKeyId.toUpperCase();
          const verification = await verifySignedMessage(signed, trust.openpgp);
          // A payload that does not parse throws: not kept, and answered as unreadable below.
          if (!verification.verified) return { keyId, problem: verification.reason };
          const claim = parsePayload(verification.payload);
          return signed.expires ? { keyId, claim, until: signed.expires.getTime() } : { keyId, claim };
        },
      );
      const { keyId } = checked;
      if ('problem' in checked) return { accepted: false, keyId, problem: checked.problem, stage: 'key', ...detail };
      const problem = claimProblem(checked.claim, digest, request, 'matchRepoDigestOrExact');
      if (problem) return { accepted: false, keyId, problem, stage: 'claim', ...detail };
      if (checked.until !== undefined) budget.until = Math.min(budget.until ?? Infinity, checked.until);
      return { accepted: true, keyId, ...detail };
    } catch (err) {
      return { accepted: false, problem: `unreadable signature: ${(err as Error).message}`, stage: 'key', ...detail };
    }
  }

  /** A cosign signature: key, then digest, then identity (matchRepository). */
  async function judgeCosign(
    layer: CosignLayer,
    digest: string,
    request: JudgedRequest,
    trust: TrustSet,
    budget: Budget,
  ): Promise<Outcome> {
    const detail: OutcomeDetail = { format: 'cosign' };
    // The payload is read only on a miss.
    const verified = await verifiedOnce(trust, `cosign ${cosignLayerKey(layer)}`, async (): Promise<CosignVerification | undefined> => {
      const limit = Math.min(COSIGN_PAYLOAD_LIMIT, budget.payloadBytes);
      const payload = layer.payloadSize <= limit ? await readBlob(layer.payloadDigest, limit) : undefined;
      budget.payloadBytes -= payload?.length ?? 0;
      // Not kept: the payload may be stored later, or fit a later pull's budget.
      if (!payload) return undefined;
      deps.onVerification?.('cosign');
      const key = verifyCosignSignature(payload, layer.signature, trust.cosign);
      if (!key) return { key };
      try {
        return { key, claim: parseCosignPayload(payload) };
      } catch (err) {
        return { key, unreadable: (err as Error).message };
      }
    });
    if (!verified) return { accepted: false, problem: 'cosign signature payload is missing or too large', stage: 'key', ...detail };
    if (!verified.key)
      return {
        accepted: false,
        keyId: 'cosign (untrusted key)',
        problem: 'cosign signature by a key that is not trusted',
        stage: 'key',
        ...detail,
      };
    const keyId = `cosign:${verified.key.fingerprint.slice(0, 16).toUpperCase()}`;
    if ('unreadable' in verified) return { accepted: false, keyId, problem: verified.unreadable, stage: 'claim', ...detail };
    const { claim } = verified;
    const reference = claim.reference;
    const named: OutcomeDetail = {
      ...detail,
      identity: `${reference.host}/${reference.repository}${reference.tag ? `:${reference.tag}` : ''}`,
    };
    const problem = claimProblem(claim, digest, request, 'matchRepository');
    return problem ? { accepted: false, keyId, problem, stage: 'claim', ...named } : { accepted: true, keyId, ...named };
  }

  /**
   * Every distinct signature of a digest, judged one at a time (the caller stops at the first
   * accepted), within the decision's budget.
   */
  async function* outcomes(digest: string, request: JudgedRequest, trust: TrustSet, budget: Budget): AsyncGenerator<Outcome> {
    let judged = 0;
    const affordable = (): boolean => {
      if (judged >= MAX_SIGNATURES_PER_DIGEST)
        budget.spent ??= `only the first ${MAX_SIGNATURES_PER_DIGEST} signatures of a manifest are judged`;
      else if (budget.signatures <= 0) budget.spent ??= `only ${MAX_SIGNATURES_PER_DECISION} signatures are judged per pull`;
      else {
        judged += 1;
        budget.signatures -= 1;
        return true;
      }
      return false;
    };
    for (const record of await signatures.list(request.repository, digest)) {
      if (!affordable()) return;
      yield judgeSimple(record, digest, request, trust, budget);
    }
    const seen = new Set<string>();
    for (const manifest of await cosignManifests(request.repository, digest)) {
      for (const layer of cosignLayers(manifest.content)) {
        const key = cosignLayerKey(layer);
        if (seen.has(key)) continue;
        seen.add(key);
        if (layer.payloadSize <= COSIGN_PAYLOAD_LIMIT && layer.payloadSize > budget.payloadBytes) {
          budget.spent ??= `only ${MAX_PAYLOAD_BYTES_PER_DECISION} bytes of cosign payloads are read per pull`;
          return;
        }
        if (!affordable()) return;
        yield judgeCosign(layer, digest, request, trust, budget);
      }
    }
  }

  /**
   * Judges a digest's signatures until one is accepted. With `collect` (explain), every signature is
   * judged and kept there; the result is the same, since one accepted signature settles it.
   */
  async function evaluate(
    digest: string,
    request: JudgedRequest,
    trust: TrustSet,
    budget: Budget,
    collect?: Outcome[],
  ): Promise<Evaluation> {
    const result: Evaluation = { ok: false, keyIds: new Set(), problems: [], signatures: 0 };
    for await (const outcome of outcomes(digest, request, trust, budget)) {
      collect?.push(outcome);
      if (result.ok) continue;
      result.signatures += 1;
      if (outcome.keyId) result.keyIds.add(outcome.keyId);
      if (outcome.accepted) {
        result.ok = true;
        if (!collect) break;
        continue;
      }
      result.problems.push(outcome.problem);
    }
    return result;
  }

  /** The decision; with `collect`, the top manifest's signatures, every one judged, land there too. */
  async function decide(
    request: JudgedRequest,
    manifest: ManifestRecord,
    trust: TrustSet,
    budget: Budget,
    collect?: Outcome[],
  ): Promise<GateDecision> {
    const { repository, tag } = request;
    const body = jsonObjectOf(manifest.content);
    const ambiguous = ambiguousFields(body, manifest.mediaType);
    if (ambiguous.length > 0) {
      const message = `${repository}@${manifest.digest} is an ambiguous manifest (it carries ${ambiguous.join(', ')}) and is never served by a signed-only project`;
      return { allowed: false, message, keyIds: [], problems: [message] };
    }
    if ((await artifacts.classify(manifest)).signature) return { allowed: true, via: 'signature-artifact' };

    const seen: Evaluation[] = [];
    const childProblems: string[] = [];
    const admit = async (digest: string, asTag: string | undefined): Promise<boolean> => {
      const judged: JudgedRequest = {
        repository,
        hosts: request.hosts,
        ...(request.remap ? { remap: request.remap } : {}),
        ...(asTag !== undefined ? { tag: asTag } : {}),
      };
      const evaluation = await evaluate(digest, judged, trust, budget, digest === manifest.digest ? collect : undefined);
      seen.push(evaluation);
      return evaluation.ok;
    };
    if (await admit(manifest.digest, tag)) return { allowed: true, via: 'signature' };
    // Related manifests (an index's children, or the indexes listing a platform manifest) can
    // only pass with a signature of their own: only those that have any are judged, at most 64.
    // Anyone who pushes can add related manifests without end (64 unsigned indexes listing a
    // platform manifest crowded out the signed one when the first 64 by digest were judged;
    // adversarial testing); no one without a trusted key can add signed ones.
    const related = async (digests: string[], what: string): Promise<string[]> => {
      const signed = await metadata.manifests.signedAmong(repository, digests, COSIGN_SIG_ARTIFACT);
      const candidates = [...new Set(digests)].filter((d) => d !== manifest.digest && signed.has(d));
      if (candidates.length > MAX_RELATED_DIGESTS) budget.spent ??= `only ${MAX_RELATED_DIGESTS} signed ${what} are judged`;
      return candidates.slice(0, MAX_RELATED_DIGESTS);
    };
    if (isIndexMediaType(manifest.mediaType)) {
      if (await everyChildAdmitted(repository, body, admit, tag, budget, childProblems)) return { allowed: true, via: 'signature' };
    } else if (tag === undefined) {
      const parents = await metadata.manifests.parents(repository, manifest.digest);
      for (const parent of await related(parents, 'indexes listing a manifest')) {
        if (await admit(parent, undefined)) return { allowed: true, via: 'signature' };
      }
    }
    return refusal(request, manifest, trust, seen, budget, childProblems);
  }

  /**
   * Whether every manifest the index lists has a signature admitting it for this pull; none
   * reached elsewhere than this registry (`urls`, `data`), and at least one listed. Why not, into
   * `problems`.
   */
  async function everyChildAdmitted(
    repository: string,
    body: Record<string, unknown>,
    admit: (digest: string, asTag: string | undefined) => Promise<boolean>,
    tag: string | undefined,
    budget: Budget,
    problems: string[],
  ): Promise<boolean> {
    const descriptors = Array.isArray(body.manifests) ? (body.manifests as unknown[]) : [];
    const digests = new Set<string>();
    for (const d of descriptors) {
      const descriptor = d !== null && typeof d === 'object' ? (d as Record<string, unknown>) : {};
      if (typeof descriptor.digest !== 'string') return false;
      if (descriptor.urls !== undefined || descriptor.data !== undefined) {
        problems.push(
          `the index lists ${descriptor.digest} with ${descriptor.urls !== undefined ? 'urls' : 'data'}, which clients may take from elsewhere`,
        );
        return false;
      }
      digests.add(descriptor.digest);
    }
    if (digests.size === 0) return false;
    if (digests.size > MAX_RELATED_DIGESTS) {
      budget.spent ??= `an index is judged by its manifests' signatures only when it lists at most ${MAX_RELATED_DIGESTS}`;
      return false;
    }
    // Cheap first: a child without any signature settles it.
    const signed = await metadata.manifests.signedAmong(repository, [...digests], COSIGN_SIG_ARTIFACT);
    const unsigned = [...digests].filter((d) => !signed.has(d));
    if (unsigned.length > 0) {
      problems.push(`the index lists ${unsigned.length === 1 ? 'a manifest' : 'manifests'} without a signature (${unsigned.join(', ')})`);
      return false;
    }
    for (const child of digests) {
      if (!(await admit(child, tag))) {
        problems.push(`the index lists ${child}, which has no signature matching this pull`);
        return false;
      }
    }
    return true;
  }

  function refusal(
    request: JudgedRequest,
    manifest: ManifestRecord,
    trust: TrustSet,
    seen: Evaluation[],
    budget: Budget,
    childProblems: string[] = [],
  ): GateDecision {
    const { repository, tag } = request;
    const keyIds = [...new Set(seen.flatMap((e) => [...e.keyIds]))];
    const problems = [...new Set([...seen.flatMap((e) => e.problems), ...childProblems])];
    const total = seen.reduce((n, e) => n + e.signatures, 0);
    const wanted = `${repository}${tag ? `:${tag}` : `@${manifest.digest}`}`;
    let message: string;
    if (total === 0)
      message = `${wanted} is not signed; project ${projectOf(repository)} only serves signed images${childProblems.length > 0 ? ` (${childProblems.join('; ')})` : ''}`;
    else if (trust.openpgp.length + trust.cosign.length === 0)
      message = `project ${projectOf(repository)} trusts no keys, so no signature of ${wanted} can be accepted`;
    else message = `no trusted signature matches ${wanted}: ${problems.join('; ')}`;
    if (keyIds.length > 0 && total > 0) message += ` (signatures seen from ${keyIds.join(', ')})`;
    if (budget.spent) {
      message += `; ${budget.spent}`;
      problems.push(budget.spent);
    }
    return { allowed: false, message, keyIds, problems };
  }

  /** The decision for a pull from a signed-only project, from the cache when it is fresh. */
  /** A mirror project's identity remapping (containers/image remapIdentity), as requests are judged with it. */
  function remapOf(project: Project): Pick<JudgedRequest, 'remap'> {
    const mirror = project.mirror;
    return mirror ? { remap: { project: project.name, signedPrefix: mirror.signedPrefix ?? defaultSignedPrefix(mirror.upstream) } } : {};
  }

  const cacheKeyOf = (request: JudgedRequest, manifest: ManifestRecord): string =>
    [epoch, request.repository, manifest.digest, request.tag ?? '', request.hosts.join(','), request.remap?.signedPrefix ?? ''].join(
      '\u0000',
    );

  /** Decisions being made: pulls of the same uncached manifest at once wait for one judgement. */
  const deciding = new Map<string, Promise<GateDecision>>();

  async function judge(request: JudgedRequest, manifest: ManifestRecord, project: string): Promise<GateDecision> {
    const cacheKey = cacheKeyOf(request, manifest);
    const known = decisions.get(cacheKey) ?? deciding.get(cacheKey);
    if (known) return known;
    const made = (async () => {
      const before = epoch;
      const trust = await keys.trusted(project);
      const budget = newBudget();
      const decision = await decide(request, manifest, trust, budget);
      if (before === epoch) remember(decisions, cacheKey, decision, trust, budget.until);
      return decision;
    })();
    deciding.set(cacheKey, made);
    try {
      return await made;
    } finally {
      deciding.delete(cacheKey);
    }
  }

  /**
   * Caches a decision for REGISTRY_CACHE_TTL, but never past the next expiry of a trusted key nor
   * past `until` (the earliest expiry of a signature it rests on): expiry is no write, so nothing
   * else would drop it, and a signature by a key that expired, or one that expired itself, must
   * stop counting then, not up to a TTL later (containers/image checks validity at each pull).
   */
  function remember<V extends object>(cache: LRUCache<string, V>, key: string, value: V, trust: TrustSet, until?: number): void {
    const now = Date.now();
    const bound = Math.min(trust.expiries.find((at) => at > now) ?? Infinity, until ?? Infinity);
    if (bound <= now) return;
    const ttl = Math.max(deps.cacheTtlMs, 1);
    if (bound - now >= ttl) cache.set(key, value);
    else cache.set(key, value, { ttl: Math.max(bound - now, 1) });
  }

  /** What explain shows, cached as decisions are (and dropped with them). */
  const explained = createLru<string, { decision: GateDecision; signatures: SignatureJudgement[] }>(5_000, {
    ttlMs: Math.max(deps.cacheTtlMs, 1),
  });
  const dropExplained = (): void => empty(explained);
  deps.bus.subscribe(dropExplained);

  /** The decision and every signature judged, in one pass through `decide` (the gate's own). */
  async function explainFully(
    request: JudgedRequest,
    manifest: ManifestRecord,
    project: string,
  ): Promise<{ decision: GateDecision; signatures: SignatureJudgement[] }> {
    const cacheKey = cacheKeyOf(request, manifest);
    const known = explained.get(cacheKey);
    if (known) return known;
    const before = epoch;
    const collected: Outcome[] = [];
    const trust = await keys.trusted(project);
    const budget = newBudget();
    const decision = await decide(request, manifest, trust, budget, collected);
    const result = { decision, signatures: collected.map(toJudgement) };
    if (before === epoch) {
      remember(explained, cacheKey, result, trust, budget.until);
      remember(decisions, cacheKey, decision, trust, budget.until);
    }
    return result;
  }

  return {
    async explain({ manifest, hosts, ...request }, options = {}) {
      const name = projectOf(request.repository);
      const project = await projects.find(name);
      // Judged as a pull is (identity remapping of a mirror included), so the console shows what a pull gets.
      const judged = { ...request, hosts: hosts(), ...(project ? remapOf(project) : {}) };
      const enforced = project?.signedOnly ?? false;
      if (options.signatures === false) return { enforced, decision: await judge(judged, manifest, name), signatures: [] };
      return { enforced, ...(await explainFully(judged, manifest, name)) };
    },

    async enforce({ manifest, hosts, ...request }) {
      const project = await projects.find(projectOf(request.repository));
      if (!project?.signedOnly) return;
      const decision = await judge({ ...request, hosts: hosts(), ...remapOf(project) }, manifest, project.name);
      deps.onDecision?.(decision.allowed ? 'allowed' : 'refused');
      if (!decision.allowed) throw new PullRefusedError(decision.message, decision.keyIds, decision.problems);
    },
    invalidate,
  };
}
