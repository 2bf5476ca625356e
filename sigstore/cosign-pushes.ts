// cosign signatures pushed by developers into a signed-only project. The gate reads a digest's
// cosign signatures from its `sha256-<hex>.sig` tag and its referrers of cosign's artifact type,
// at most 128 of them (pull-gate.ts). A signature by a key the project does not trust can never
// open the gate there, but it takes one of those places: 128 junk signatures pushed ahead of a
// valid referrer made a signed image unpullable (adversarial testing). So, as for simple signatures
// (signatures.ts), only maintainers may push cosign signatures by keys the project does not trust:
// a push that the gate would read as cosign signatures, by anyone below, must carry only
// signatures that verify with a trusted cosign key and name the digest they are attached to (a
// trusted signature of another image, replayed, took a place just the same), and at least one (a
// `.sig` tag or referrer without any took one too, or replaced the signer's `.sig`; adversarial
// testing). Every other push is unaffected.
import { projectOf } from '../auth/authorize.js';
import type { ProjectStore } from '../storage/project-store.js';
import {
  COSIGN_PAYLOAD_LIMIT,
  COSIGN_SIG_ARTIFACT,
  cosignLayerKey,
  cosignLayers,
  digestOfSignatureTag,
  MAX_COSIGN_SIGNATURES,
  parseCosignPayload,
  verifyCosignSignature,
} from './cosign.js';
import type { Keys } from './keys.js';
import type { SmallBlobReader } from './signature-artifact.js';
import { SignatureRefusedError } from './signatures.js';

export interface CosignPush {
  repository: string;
  tag?: string;
  /** The manifest's subject and artifact type (its config's media type when it names none). */
  subject?: string;
  artifactType?: string;
  content: Buffer;
  /** Whether the caller may store signatures by keys the project does not trust (maintainers); asked only when it matters. */
  untrustedAllowed: () => Promise<boolean>;
}

export interface CosignPushes {
  /** Throws SignatureRefusedError when the push carries a cosign signature this caller may not store. */
  check(push: CosignPush): Promise<void>;
}

export function createCosignPushes(deps: {
  keys: Pick<Keys, 'trusted'>;
  projects: Pick<ProjectStore, 'find'>;
  readBlob: SmallBlobReader;
}): CosignPushes {
  return {
    async check(push) {
      // The digest the gate reads these signatures for: the tag's, else the subject's.
      const signedFor =
        (push.tag !== undefined ? digestOfSignatureTag(push.tag) : undefined) ??
        (push.subject !== undefined && push.artifactType === COSIGN_SIG_ARTIFACT ? push.subject : undefined);
      if (signedFor === undefined) return;
      const project = projectOf(push.repository);
      if (!(await deps.projects.find(project))?.signedOnly) return;
      if (await push.untrustedAllowed()) return;
      const layers = cosignLayers(push.content);
      const refuse = (why: string): never => {
        throw new SignatureRefusedError(
          `project ${project} only serves signed images, and ${why}: only maintainers may push cosign signatures the gate cannot accept`,
        );
      };
      if (layers.length === 0) refuse('this push, read as cosign signatures, carries none');
      if (layers.length > MAX_COSIGN_SIGNATURES)
        refuse(`this push carries ${layers.length} cosign signatures (at most ${MAX_COSIGN_SIGNATURES})`);
      const trusted = (await deps.keys.trusted(project)).cosign;
      const seen = new Set<string>();
      for (const layer of layers) {
        const key = cosignLayerKey(layer);
        if (seen.has(key)) continue;
        seen.add(key);
        // The payload is in the repository already (pushed before the manifest), or the push fails anyway.
        const payload =
          layer.payloadSize <= COSIGN_PAYLOAD_LIMIT ? await deps.readBlob(layer.payloadDigest, COSIGN_PAYLOAD_LIMIT) : undefined;
        if (!payload)
          refuse(`the payload ${layer.payloadDigest} of a cosign signature is missing or larger than ${COSIGN_PAYLOAD_LIMIT} bytes`);
        if (!verifyCosignSignature(payload!, layer.signature, trusted)) refuse('a cosign signature in this push is not by a key it trusts');
        let named: string | undefined;
        try {
          named = parseCosignPayload(payload!).manifestDigest;
        } catch {
          named = undefined;
        }
        if (named !== signedFor) refuse(`a cosign signature in this push is not for ${signedFor}`);
      }
    },
  };
}
