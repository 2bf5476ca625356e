// Which manifests are signatures and nothing else, judged by their content. In a signed-only
// project these are the only manifests served without a signature of their own: verifying clients
// must fetch them (cosign's `sha256-<hex>.sig` tag, OCI 1.1 referrers such as sigstore bundles and
// Notation signatures) before they can check anything.
//
// Labels prove nothing: the tag, `artifactType`, the layers' media types and annotations are chosen
// by whoever pushes, and podman applies a gzip tar labelled as a cosign payload as an ordinary
// layer. So a manifest is a signature artifact only when
//   - it is an image manifest (never an index), unambiguous, with at least one layer;
//   - it and its descriptors carry only the fields the signing tools write: no `urls`
//     (containers/image fetches such a layer from the URLs), no `data`, and no key a Go client's
//     case-insensitive JSON would read as one of them;
//   - its config is the empty object `{}`, or an image config that runs nothing (no `config`
//     settings: no entrypoint, command, environment or user);
//   - every layer is small and its bytes parse, strictly, as the signature payload its media type
//     names: a cosign simple-signing payload, a DSSE envelope (cosign attestations), a sigstore
//     bundle, or a Notation JWS envelope.
//   - no block of any layer, at a multiple of 512 bytes where tar readers look for headers, checks
//     out as a tar header.
// JSON cannot hold a raw NUL byte, and every executable format has one (an ELF header's e_type is a
// 16-bit little-endian 2 or 3), but a tar archive need not: a V7 header can be printable ASCII
// throughout, and adversarial testing built a strict DSSE envelope whose `payloadType` string was
// a V7 archive of shell scripts, which podman unpacked (Go's archive/tar reads the first block as
// a header when its checksum holds; GNU tar also skips ahead to later blocks that check out). The
// checksum test is what those readers apply, so a layer that passes it is never exempt. Notation's
// COSE envelopes are binary and could double as an archive: they are not exempt either.
import { createLru } from '../storage/lru.js';
import type { Blobs } from '../storage/blobs.js';
import { digestOf, parseDigest } from '../storage/digest.js';
import { COSIGN_SIMPLESIGNING, parseCosignPayload } from './cosign.js';
import { parseStrictJson } from './strict-json.js';

export const DSSE_ENVELOPE = 'application/vnd.dsse.envelope.v1+json';
export const NOTATION_JWS = 'application/jose+json';
const SIGSTORE_BUNDLE_RE = /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.[1-3]\+json|\+json;\s*version=0\.[1-3])$/;
const EMPTY_CONFIG_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'; // "{}"
const IMAGE_CONFIG_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.config.v1+json',
  'application/vnd.docker.container.image.v1+json',
]);
const IMAGE_MANIFEST_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);
/** Image config fields that describe, but do not run, anything (`config` is checked apart). */
const INERT_CONFIG_FIELDS: ReadonlySet<string> = new Set([
  'architecture',
  'os',
  'os.version',
  'os.features',
  'variant',
  'created',
  'author',
  'history',
  'rootfs',
  'config',
]);

/** The most a signature layer may hold; larger ones (big attestations) are gated like images. */
export const MAX_SIGNATURE_LAYER_BYTES = 256 * 1024;
const MAX_CONFIG_BYTES = 64 * 1024;
/** cosign adds one layer per signature to its `.sig` manifest; clients read at most 128. */
const MAX_SIGNATURE_LAYERS = 128;
/**
 * The distinct layers' bytes one judgement reads and parses at most: 128 simple-signing payloads
 * or a few attestations are far less. A manifest of 127 layers naming one 256 KiB envelope was
 * read 127 times per judgement, and strict JSON of many small keys parses at about 4 MB/s here, so
 * 4 MiB of it held the event loop for a second (adversarial testing).
 */
const MAX_SIGNATURE_BYTES = 1024 * 1024;

export type ArtifactVerdict = { signature: true } | { signature: false; reason: string };

export interface SignatureArtifacts {
  /** Whether this stored manifest is a signature artifact and nothing else (cached per digest). */
  classify(manifest: { digest: string; mediaType: string; content: Buffer }): Promise<ArtifactVerdict>;
}

/** Reads a small blob whole, or `undefined` when it is missing, larger than `limit` or not what its digest says. */
export type SmallBlobReader = (digest: string, limit: number) => Promise<Buffer | undefined>;

export function createSmallBlobReader(blobs: Blobs): SmallBlobReader {
  return async (digest, limit) => {
    const parsed = parseDigest(digest);
    if (!parsed) return undefined;
    const stat = await blobs.stat(parsed);
    if (!stat || stat.size > limit) return undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of await blobs.open(parsed)) {
        size += (chunk as Buffer).length;
        if (size > limit) return undefined;
        chunks.push(chunk as Buffer);
      }
    } catch {
      return undefined;
    }
    const bytes = Buffer.concat(chunks);
    return digestOf(parsed.algorithm, bytes) === digest ? bytes : undefined;
  };
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const not = (reason: string): ArtifactVerdict => ({ signature: false, reason });
const SIGNATURE: ArtifactVerdict = { signature: true };

/** Strict JSON object from UTF-8 bytes (no duplicate keys, no trailing data), or undefined. */
function jsonObject(bytes: Buffer): Json | undefined {
  try {
    const value = parseStrictJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

const onlyKeys = (value: Json, allowed: readonly string[]): boolean => Object.keys(value).every((k) => allowed.includes(k));
const isString = (value: unknown): value is string => typeof value === 'string';
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;

/** A DSSE envelope (https://github.com/secure-systems-lab/dsse): payloadType, payload, signatures. */
function isDsseEnvelope(value: unknown): boolean {
  if (!isObject(value) || !onlyKeys(value, ['payloadType', 'payload', 'signatures'])) return false;
  const { payloadType, payload, signatures } = value;
  return (
    isString(payloadType) &&
    isString(payload) &&
    BASE64_RE.test(payload) &&
    Array.isArray(signatures) &&
    signatures.length > 0 &&
    signatures.every((s) => isObject(s) && onlyKeys(s, ['keyid', 'sig']) && isString(s.sig) && (s.keyid === undefined || isString(s.keyid)))
  );
}

/** A sigstore bundle (protobuf-specs Bundle in its JSON form): verification material and one signature. */
function isSigstoreBundle(value: Json): boolean {
  if (!onlyKeys(value, ['mediaType', 'verificationMaterial', 'messageSignature', 'dsseEnvelope'])) return false;
  if (!isString(value.mediaType) || !value.mediaType.startsWith('application/vnd.dev.sigstore.bundle')) return false;
  if (!isObject(value.verificationMaterial)) return false;
  const signature = value.messageSignature;
  if (signature !== undefined) return value.dsseEnvelope === undefined && isObject(signature) && isString(signature.signature);
  return isDsseEnvelope(value.dsseEnvelope);
}

/** A JWS in the JSON serialization with one signature, as Notation writes it. */
function isJwsEnvelope(value: Json): boolean {
  const { payload, protected: header, signature, header: unprotected } = value;
  return (
    onlyKeys(value, ['payload', 'protected', 'header', 'signature']) &&
    isString(payload) &&
    BASE64URL_RE.test(payload) &&
    isString(header) &&
    BASE64URL_RE.test(header) &&
    isString(signature) &&
    BASE64URL_RE.test(signature) &&
    (unprotected === undefined || isObject(unprotected))
  );
}

/** Whether the bytes are the signature payload `mediaType` names. */
function isSignaturePayload(mediaType: string, bytes: Buffer): boolean {
  const value = jsonObject(bytes);
  if (!value) return false;
  if (mediaType === COSIGN_SIMPLESIGNING) {
    try {
      parseCosignPayload(bytes);
      return true;
    } catch {
      return false;
    }
  }
  if (mediaType === DSSE_ENVELOPE) return isDsseEnvelope(value);
  if (mediaType === NOTATION_JWS) return isJwsEnvelope(value);
  if (SIGSTORE_BUNDLE_RE.test(mediaType)) return isSigstoreBundle(value);
  return false;
}

/** Whether a media type names a signature payload this module can parse. */
export function isSignatureLayerType(mediaType: string): boolean {
  return (
    mediaType === COSIGN_SIMPLESIGNING || mediaType === DSSE_ENVELOPE || mediaType === NOTATION_JWS || SIGSTORE_BUNDLE_RE.test(mediaType)
  );
}

const TAR_BLOCK = 512;
const TAR_CHECKSUM_START = 148;
const TAR_CHECKSUM_END = 156;

/**
 * Whether a 512-byte block of `bytes`, at a multiple of 512 (a short last block padded with zeros),
 * checks out as a tar header: the octal number in its checksum field (after leading blanks or NULs)
 * is the sum of the block's bytes, unsigned or signed, with the field itself counted as spaces.
 * That is the test of Go's archive/tar (containers/storage, containerd) and GNU tar; the digits
 * are read as far as they go, which passes what either accepts and a little more.
 */
export function holdsTarHeader(bytes: Buffer): boolean {
  for (let at = 0; at < bytes.length; at += TAR_BLOCK) {
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < TAR_BLOCK; i++) {
      const byte = i >= TAR_CHECKSUM_START && i < TAR_CHECKSUM_END ? 0x20 : (bytes[at + i] ?? 0);
      unsigned += byte;
      signed += byte > 127 ? byte - 256 : byte;
    }
    let i = at + TAR_CHECKSUM_START;
    const end = at + TAR_CHECKSUM_END;
    // Go trims spaces and NULs; GNU tar's from_header skips a NUL and then any isspace byte (tab,
    // line feed, vertical tab, form feed, carriage return too: a checksum field of "\n" and a JSON
    // number, outside any string, passed the first version of this check; adversarial testing).
    while (i < end && (bytes[i] === 0x20 || bytes[i] === 0 || (bytes[i]! >= 0x09 && bytes[i]! <= 0x0d))) i++;
    let recorded = 0;
    let digits = 0;
    for (; i < end && bytes[i] !== undefined && bytes[i]! >= 0x30 && bytes[i]! <= 0x37; i++, digits++)
      recorded = recorded * 8 + bytes[i]! - 0x30;
    if (digits > 0 && (recorded === unsigned || recorded === signed)) return true;
  }
  return false;
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** What the signature artifacts of cosign, containers/image, sigstore and Notation carry, and no more. */
const ARTIFACT_MANIFEST_FIELDS = ['schemaVersion', 'mediaType', 'artifactType', 'config', 'layers', 'subject', 'annotations'];
const PLAIN_DESCRIPTOR_FIELDS = ['mediaType', 'digest', 'size', 'annotations', 'artifactType'];

/** The descriptor, if it is a plain one: media type, digest and size (no `urls`, `data` or anything else). */
function plainDescriptor(value: unknown): Descriptor | undefined {
  if (!isObject(value) || !onlyKeys(value, PLAIN_DESCRIPTOR_FIELDS)) return undefined;
  const { mediaType, digest, size } = value;
  if (!isString(mediaType) || !isString(digest) || typeof size !== 'number') return undefined;
  return { mediaType, digest, size };
}

/** The layers and config of a manifest that could be a signature artifact, or why it cannot be. */
function shape(manifest: { mediaType: string; content: Buffer }): { config: Descriptor; layers: Descriptor[] } | string {
  if (!IMAGE_MANIFEST_TYPES.has(manifest.mediaType)) return 'an index is never a signature artifact';
  const body = jsonObject(manifest.content);
  if (!body || body.manifests !== undefined) return 'not an unambiguous image manifest';
  // A field no signature artifact has could be one a client reads otherwise (a key Go's JSON
  // matches to `layers` regardless of case, a vendor's extension): the exemption is for the exact
  // shape the signing tools write.
  if (!onlyKeys(body, ARTIFACT_MANIFEST_FIELDS)) return 'it carries fields signature artifacts do not have';
  const config = plainDescriptor(body.config);
  if (!config) return 'its config descriptor names external URLs, embedded data or other fields';
  if (!Array.isArray(body.layers) || body.layers.length === 0) return 'it has no layers';
  if (body.layers.length > MAX_SIGNATURE_LAYERS) return `it has more than ${MAX_SIGNATURE_LAYERS} layers`;
  const layers: Descriptor[] = [];
  for (const entry of body.layers) {
    const layer = plainDescriptor(entry);
    if (!layer) return 'a layer names external URLs, embedded data or other fields';
    if (!isSignatureLayerType(layer.mediaType)) return `layer type ${layer.mediaType} is not a signature payload`;
    if (layer.size > MAX_SIGNATURE_LAYER_BYTES) return `a ${layer.mediaType} layer is larger than ${MAX_SIGNATURE_LAYER_BYTES} bytes`;
    layers.push(layer);
  }
  return { config, layers };
}

/** Whether the config bytes configure nothing that runs. */
function isInertConfig(config: Descriptor, bytes: Buffer): boolean {
  const value = jsonObject(bytes);
  if (!value) return false;
  if (Object.keys(value).length === 0) return true; // `{}`, whatever type it is labelled with
  if (!IMAGE_CONFIG_TYPES.has(config.mediaType)) return false;
  if (!Object.keys(value).every((k) => INERT_CONFIG_FIELDS.has(k))) return false;
  const settings = value.config;
  return settings === undefined || settings === null || (isObject(settings) && Object.keys(settings).length === 0);
}

export function createSignatureArtifacts(readBlob: SmallBlobReader): SignatureArtifacts {
  // Content-addressed and immutable: a verdict never goes stale.
  const verdicts = createLru<string, ArtifactVerdict>(10_000);
  /**
   * What each layer's bytes are, by type and digest, whatever manifest names them: each is parsed
   * once, however many manifests a member pushes around it (only a blob that could not be read is
   * not remembered, and is read again next time).
   */
  const layerVerdicts = createLru<string, ArtifactVerdict>(10_000);

  /** Whether a layer's bytes are the signature payload they claim to be, and not also an archive. */
  async function judgeLayer(layer: Descriptor): Promise<ArtifactVerdict | undefined> {
    const key = `${layer.mediaType}\u0000${layer.digest}`;
    const known = layerVerdicts.get(key);
    if (known) return known;
    // No more than its descriptor says: the sizes were bounded before.
    const bytes = await readBlob(layer.digest, Math.min(layer.size, MAX_SIGNATURE_LAYER_BYTES));
    if (!bytes) return undefined;
    const verdict = !isSignaturePayload(layer.mediaType, bytes)
      ? not(`layer ${layer.digest} does not parse as the ${layer.mediaType} it claims to be`)
      : holdsTarHeader(bytes)
        ? not(`layer ${layer.digest} is also a tar archive`)
        : SIGNATURE;
    layerVerdicts.set(key, verdict);
    return verdict;
  }

  /**
   * The verdict, and whether it may be kept: a "no" because a blob could not be read (missing, or
   * a read that failed) may be a passing fault; one from bytes that were read is final, since they
   * are what their digest says (a "no" not kept was judged anew at every pull, and a pull through
   * a new Host name is a new decision: an anonymous client made each request cost 0.6 s of CPU).
   */
  async function judge(manifest: { mediaType: string; content: Buffer }): Promise<[ArtifactVerdict, boolean]> {
    const parts = shape(manifest);
    if (typeof parts === 'string') return [not(parts), true];
    const { config, layers } = parts;
    // One blob is one thing: the tools write each payload once, under one type. The same 256 KiB
    // blob under 128 spellings of one type was parsed 128 times (adversarial testing).
    const distinct = new Map<string, Descriptor>();
    for (const layer of layers) {
      if ((distinct.get(layer.digest)?.mediaType ?? layer.mediaType) !== layer.mediaType)
        return [not(`layer ${layer.digest} is named under two types`), true];
      distinct.set(layer.digest, layer);
    }
    const declared = [...distinct.values()].reduce((sum, layer) => sum + layer.size, 0);
    if (declared > MAX_SIGNATURE_BYTES) return [not(`its layers hold more than ${MAX_SIGNATURE_BYTES} bytes`), true];
    const configBytes = config.digest === EMPTY_CONFIG_DIGEST ? Buffer.from('{}') : await readBlob(config.digest, MAX_CONFIG_BYTES);
    if (!configBytes) return [not('its config could not be read'), false];
    if (!isInertConfig(config, configBytes)) return [not('its config is neither empty nor a signature config'), true];
    for (const layer of distinct.values()) {
      const verdict = await judgeLayer(layer);
      if (!verdict) return [not(`layer ${layer.digest} could not be read as its descriptor says`), false];
      if (!verdict.signature) return [verdict, true];
    }
    return [SIGNATURE, true];
  }

  return {
    async classify(manifest) {
      const known = verdicts.get(manifest.digest);
      if (known) return known;
      const [verdict, keep] = await judge(manifest);
      // The gate's own decision cache keeps repeated pulls from reading the blobs again.
      if (keep) verdicts.set(manifest.digest, verdict);
      return verdict;
    },
  };
}
