// Cosign signatures as containers/image (`use-sigstore-attachments: true`) and cosign store them:
// an OCI image manifest at the tag `sha256-<hex>.sig` (or an OCI 1.1 referrer of artifactType
// application/vnd.dev.cosign.artifact.sig.v1+json), one layer per signature whose blob is the
// payload and whose annotation `dev.cosignproject.cosign/signature` is the base64 signature over it.
import { verify, type KeyObject } from 'node:crypto';
import { parseDigest } from '../storage/digest.js';
import { parseDockerReference, type DockerReference } from './docker-reference.js';
import type { CosignKey } from './keys.js';
import { SignatureFormatError } from './payload.js';
import { parseStrictJson } from './strict-json.js';

export const COSIGN_SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const COSIGN_SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const COSIGN_SIG_ARTIFACT = 'application/vnd.dev.cosign.artifact.sig.v1+json';
export const COSIGN_PAYLOAD_TYPE = 'cosign container image signature';

/** cosign payloads are read up to this size (real ones are under 1 KiB). */
export const COSIGN_PAYLOAD_LIMIT = 256 * 1024;
/** cosign signatures judged per digest: as many as containers/image reads (128). */
export const MAX_COSIGN_SIGNATURES = 128;

export function cosignSignatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

const SIGNATURE_TAG_RE = /^sha256-[a-f0-9]{64}\.sig$/;

/** The digest a `sha256-<hex>.sig` tag holds the signatures of; undefined for any other tag. */
export function digestOfSignatureTag(tag: string): string | undefined {
  return SIGNATURE_TAG_RE.test(tag) ? tag.replace('-', ':').slice(0, -'.sig'.length) : undefined;
}

export interface CosignLayer {
  payloadDigest: string;
  payloadSize: number;
  signature: Buffer;
}

/** What makes two signature layers the same signature: the payload and the signature over it. */
export function cosignLayerKey(layer: CosignLayer): string {
  return `${layer.payloadDigest} ${layer.signature.toString('base64')}`;
}

/** Standard, padded base64, as Go's base64.StdEncoding (which containers/image uses) accepts it. */
function isStdBase64(text: string): boolean {
  return text.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(text);
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
    if (layer.mediaType !== COSIGN_SIMPLESIGNING || typeof signature !== 'string' || !isStdBase64(signature)) continue;
    if (typeof layer.digest !== 'string' || !parseDigest(layer.digest) || typeof layer.size !== 'number') continue;
    out.push({ payloadDigest: layer.digest, payloadSize: layer.size, signature: Buffer.from(signature, 'base64') });
  }
  return out;
}

/**
 * The digest the signature is computed over: containers/image verifies every sigstore payload with
 * SHA-256 (sigstoreHarcodedHashAlgorithm), whatever the curve, and so does `cosign verify --key`;
 * Ed25519 signs the message itself.
 */
function hashFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
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
  /** The signed identity; cosign names the repository only, skopeo the tag too. */
  reference: DockerReference;
  dockerReference: string;
}

function fail(message: string): never {
  throw new SignatureFormatError(message);
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const exactly = (value: Record<string, unknown>, keys: string[]): boolean => Object.keys(value).sort().join() === [...keys].sort().join();

/**
 * containers/image's sigstore payload rules (signature/internal/sigstore_payload.go): exactly
 * `critical` and `optional`; `optional` null (as cosign writes it) or an object whose `creator`
 * is a string and `timestamp` an integer; exact fields in `critical`, `image` and `identity`.
 * Unlike simple signatures, the identity may name the repository only.
 */
export function parseCosignPayload(untrusted: Buffer): CosignPayload {
  let parsed: unknown;
  try {
    parsed = parseStrictJson(new TextDecoder('utf-8', { fatal: true }).decode(untrusted));
  } catch (err) {
    throw new SignatureFormatError(`cosign payload is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed) || !exactly(parsed, ['critical', 'optional']))
    fail('a cosign payload has exactly the fields critical and optional');
  const { critical, optional } = parsed;
  if (optional !== null) {
    if (!isObject(optional)) fail('optional must be an object or null');
    if (optional.creator !== undefined && typeof optional.creator !== 'string') fail('optional.creator must be a string');
    if (optional.timestamp !== undefined && !Number.isSafeInteger(optional.timestamp)) fail('optional.timestamp must be an integer');
  }
  if (!isObject(critical) || !exactly(critical, ['identity', 'image', 'type']) || critical.type !== COSIGN_PAYLOAD_TYPE) {
    fail('not a cosign container image signature payload');
  }
  const { image, identity } = critical;
  if (!isObject(image) || !exactly(image, ['docker-manifest-digest']) || !isObject(identity) || !exactly(identity, ['docker-reference'])) {
    fail('not a cosign container image signature payload');
  }
  const manifestDigest = image['docker-manifest-digest'];
  const dockerReference = identity['docker-reference'];
  const reference = typeof dockerReference === 'string' ? parseDockerReference(dockerReference) : undefined;
  if (typeof manifestDigest !== 'string' || !parseDigest(manifestDigest) || !reference || typeof dockerReference !== 'string') {
    fail('cosign payload names no valid digest or reference');
  }
  return { manifestDigest, reference, dockerReference };
}
