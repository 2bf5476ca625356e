// Cosign signatures as containers/image (`use-sigstore-attachments: true`) and cosign store them:
// an OCI image manifest at the tag `sha256-<hex>.sig` (or an OCI 1.1 referrer of artifactType
// application/vnd.dev.cosign.artifact.sig.v1+json), one layer per signature whose blob is the
// payload and whose annotation `dev.cosignproject.cosign/signature` is the base64 signature over it.
import { verify, type KeyObject } from 'node:crypto';
import { parseDigest } from '../storage/digest.js';
import { parseDockerReference, type DockerReference } from './docker-reference.js';
import type { CosignKey } from './key-store.js';
import { SignatureFormatError } from './payload.js';
import { parseStrictJson } from './strict-json.js';

export const COSIGN_SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const COSIGN_SIG_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json';
export const COSIGN_PAYLOAD_TYPE = 'cosign container image signature';
/** Artifact types that are signatures (never gated themselves). */
export const SIGNATURE_ARTIFACT_TYPES: ReadonlySet<string> = new Set([
  COSIGN_SIG_ARTIFACT,
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/vnd.cncf.notary.signature',
]);
/** Tags cosign uses for signatures, attestations and SBOMs of a digest. */
export const COSIGN_TAG_RE = /^sha256-[a-f0-9]{64}\.(sig|att|sbom)$/;

export function cosignSignatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

export interface CosignLayer {
  payloadDigest: string;
  payloadSize: number;
  signature: Buffer;
}

/** The signature layers of a cosign signature manifest; none when it is not one. */
export function cosignLayers(manifest: Buffer): CosignLayer[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(manifest.toString('utf8'));
  } catch {
    return [];
  }
  const layers = (parsed as { layers?: unknown }).layers;
  if (!Array.isArray(layers)) return [];
  const out: CosignLayer[] = [];
  for (const layer of layers as Record<string, unknown>[]) {
    const annotations = layer.annotations as Record<string, unknown> | undefined;
    const signature = annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    if (layer.mediaType !== COSIGN_SIMPLESIGNING || typeof signature !== 'string') continue;
    if (typeof layer.digest !== 'string' || !parseDigest(layer.digest) || typeof layer.size !== 'number') continue;
    out.push({ payloadDigest: layer.digest, payloadSize: layer.size, signature: Buffer.from(signature, 'base64') });
  }
  return out;
}

/** True when the manifest is a cosign signature manifest (its layers are simple-signing payloads). */
export function isCosignSignatureManifest(manifest: Buffer): boolean {
  return cosignLayers(manifest).length > 0;
}

function hashFor(key: KeyObject): string | null {
  if (key.asymmetricKeyType === 'ed25519') return null;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (curve === 'secp384r1') return 'sha384';
  if (curve === 'secp521r1') return 'sha512';
  return 'sha256'; // P-256 ECDSA and RSA (PKCS#1 v1.5), cosign's defaults
}

/** The trusted key that verifies the signature over the payload, if any. */
export function verifyCosignSignature(payload: Buffer, signature: Buffer, keys: CosignKey[]): CosignKey | undefined {
  return keys.find((k) => {
    try {
      return verify(hashFor(k.key), payload, k.key, signature);
    } catch {
      return false;
    }
  });
}

export interface CosignPayload {
  manifestDigest: string;
  reference: DockerReference;
  dockerReference: string;
}

/** containers/image's sigstore payload rules: exact critical fields; the identity may be name-only. */
export function parseCosignPayload(untrusted: Buffer): CosignPayload {
  let parsed: unknown;
  try {
    parsed = parseStrictJson(untrusted.toString('utf8'));
  } catch (err) {
    throw new SignatureFormatError(`cosign payload is not valid JSON: ${(err as Error).message}`);
  }
  const top = parsed as Record<string, unknown> | null;
  const critical = top?.critical as Record<string, unknown> | undefined;
  const image = critical?.image as Record<string, unknown> | undefined;
  const identity = critical?.identity as Record<string, unknown> | undefined;
  if (
    !critical ||
    Object.keys(critical).sort().join() !== 'identity,image,type' ||
    critical.type !== COSIGN_PAYLOAD_TYPE ||
    !image ||
    Object.keys(image).join() !== 'docker-manifest-digest' ||
    !identity ||
    Object.keys(identity).join() !== 'docker-reference'
  ) {
    throw new SignatureFormatError('not a cosign container image signature payload');
  }
  const manifestDigest = image['docker-manifest-digest'];
  const dockerReference = identity['docker-reference'];
  const reference = typeof dockerReference === 'string' ? parseDockerReference(dockerReference) : undefined;
  if (typeof manifestDigest !== 'string' || !parseDigest(manifestDigest) || !reference || typeof dockerReference !== 'string') {
    throw new SignatureFormatError('cosign payload names no valid digest or reference');
  }
  return { manifestDigest, reference, dockerReference };
}
