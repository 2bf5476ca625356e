// Parsing and validation of pushed manifests: OCI image manifest and index, Docker schema2
// manifest and manifest list, and OCI 1.1 artifacts (artifactType, subject). Pure functions, used
// by the manifest handler (server/handlers/manifests.ts checks what they name against stored
// content) and by the pull gate; they throw ManifestInvalidError or DescriptorDigestError, which
// server/errors.ts answers as MANIFEST_INVALID and DIGEST_INVALID.
import { parseDigest } from './digest.js';
import { DescriptorDigestError, ManifestInvalidError } from './errors.js';
import type { ManifestRecord, ManifestReference } from './metadata-store.js';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

const INDEX_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList]);
const IMAGE_TYPES: ReadonlySet<string> = new Set([MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
const SCHEMA1_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);
// Layers that may live outside the registry (`urls`): their blobs need not be pushed.
const FOREIGN_LAYER_TYPES = new Set([
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);
/** Content types that say nothing about the manifest kind. */
const GENERIC_CONTENT_TYPES = new Set(['', 'application/json', 'application/octet-stream']);

export function isIndexMediaType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ExpectedReference extends ManifestReference {
  size: number;
}

export interface ParsedManifest {
  mediaType: string;
  /** Blobs and child manifests that must exist in the repository, with their declared sizes. */
  references: ExpectedReference[];
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
}

function invalid(message: string, detail?: Record<string, unknown>): ManifestInvalidError {
  return new ManifestInvalidError(message, detail);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// NUL and unpaired UTF-16 surrogates (JSON escapes such as "\u0000", "\ud800") are valid JSON but
// cannot be stored as PostgreSQL text or jsonb; strings the registry stores must not hold them.
// eslint-disable-next-line no-control-regex -- NUL is one of the characters refused
const UNSTORABLE_RE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function storable(value: string, where: string): string {
  if (UNSTORABLE_RE.test(value)) throw invalid(`${where}: strings may not contain NUL or unpaired surrogate escapes`);
  return value;
}

// Media types as the image spec requires of every descriptor's mediaType and of artifactType:
// RFC 6838 (§4.2: a type and a subtype, each a restricted-name of at most 127 characters), with
// the parameters RFC 9110 allows (sigstore's `application/vnd.dev.sigstore.bundle+json;version=0.3`).
// Unchecked, a 3.9 MB artifactType was stored a hundred times and every referrers listing of the
// subject read them all back: one anonymous request ran the server out of memory (adversarial testing).
const RESTRICTED_NAME = '[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}';
const TOKEN = "[!#$%&'*+.^_`|~0-9A-Za-z-]+";
const QUOTED = '"(?:[^"\\\\\\x00-\\x1f\\x7f]|\\\\[\\t -~])*"';
const MEDIA_TYPE_RE = new RegExp(`^${RESTRICTED_NAME}/${RESTRICTED_NAME}(?:[ \\t]*;[ \\t]*${TOKEN}=(?:${TOKEN}|${QUOTED}))*$`);
/** Parameters included. */
const MAX_MEDIA_TYPE_LENGTH = 1024;

function mediaTypeOf(value: string, where: string): string {
  if (value.length > MAX_MEDIA_TYPE_LENGTH || !MEDIA_TYPE_RE.test(value)) {
    const shown = value.length > 80 ? `${value.slice(0, 80)}... (${value.length} characters)` : value;
    throw invalid(`${where}: ${shown} is not a media type (RFC 6838: type/subtype, each at most 127 characters)`);
  }
  return value;
}

function parseAnnotations(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw invalid(`${where}: annotations must map strings to strings`);
  }
  for (const [k, v] of Object.entries(value)) {
    storable(k, `${where}: annotation key`);
    storable(v as string, `${where}: annotation ${k}`);
  }
  return value as Record<string, string>;
}

function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isRecord(value)) throw invalid(`${where}: expected a descriptor object`);
  const { mediaType, digest, size, urls, artifactType } = value;
  if (typeof mediaType !== 'string' || mediaType === '') throw invalid(`${where}: mediaType is required`);
  storable(mediaType, `${where}: mediaType`);
  mediaTypeOf(mediaType, `${where}: mediaType`);
  if (typeof digest !== 'string' || !parseDigest(digest)) {
    throw new DescriptorDigestError(`${where}: invalid or unsupported digest`, digest ?? null);
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}: size must be a non-negative integer`);
  }
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string'))) {
    throw invalid(`${where}: urls must be a list of strings`);
  }
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid(`${where}: artifactType must be a string`);
  if (artifactType) mediaTypeOf(artifactType, `${where}: artifactType`);
  const annotations = parseAnnotations(value.annotations, where);
  return {
    mediaType,
    digest,
    size,
    ...(urls ? { urls: urls as string[] } : {}),
    ...(artifactType ? { artifactType } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

function resolveMediaType(contentType: string, body: Record<string, unknown>): string {
  const declared = body.mediaType;
  if (declared !== undefined && typeof declared !== 'string') throw invalid('mediaType must be a string');
  const header = contentType.split(';')[0]!.trim().toLowerCase();
  if (SCHEMA1_TYPES.has(header) || (declared && SCHEMA1_TYPES.has(declared)) || body.schemaVersion === 1) {
    throw invalid('Docker schema 1 manifests are not supported; push schema 2 or OCI');
  }
  if (body.schemaVersion !== 2) throw invalid('schemaVersion must be 2');
  if (declared && !GENERIC_CONTENT_TYPES.has(header) && declared !== header) {
    throw invalid(`mediaType ${declared} does not match Content-Type ${header}`);
  }
  const mediaType = declared || (GENERIC_CONTENT_TYPES.has(header) ? undefined : header);
  if (mediaType) {
    if (!INDEX_TYPES.has(mediaType) && !IMAGE_TYPES.has(mediaType)) {
      throw invalid(`unsupported manifest media type ${mediaType}`);
    }
    return mediaType;
  }
  // Neither says: an OCI manifest may omit mediaType, so tell by its shape.
  if (Array.isArray(body.manifests)) return MEDIA_TYPES.ociIndex;
  if (isRecord(body.config)) return MEDIA_TYPES.ociManifest;
  throw invalid('cannot tell the manifest media type: set Content-Type');
}

// Fields each kind of document may not carry. A document with both an index's `manifests` and an
// image's `config`/`layers` is read as an index by one client and as an image by another
// (CVE-2021-41190): a registry that accepted one could serve a signed index while a client runs the
// unsigned image beside it. The image spec asks registries to refuse them; containers/image
// (manifest/common.go, validateUnambiguousManifestFormat) rejects exactly these fields, schema 1's
// `fsLayers` and `history` included ("rejecting ambiguous manifest").
const FORBIDDEN_IN_INDEX = ['config', 'layers', 'fsLayers', 'history'];
const FORBIDDEN_IN_IMAGE = ['manifests', 'fsLayers', 'history'];

// Go's encoding/json fills a struct field from any key equal to its name under case folding
// ("Layers", "LAYERS", "layerſ" with U+017F), the last such key winning; docker, containerd,
// containers/image (podman, skopeo, CRI-O), crane and oras all read manifests with it, while
// JSON.parse here matches keys exactly. A document carrying `layers` and `Layers` was one image to
// the registry, and so to its gate, and another to every client: a developer passed a runnable
// image off as a cosign signature artifact that way (adversarial testing, PROTOCOL-NOTES.md). So a
// key that folds to a field the specs define without being spelt as it is refused wherever it
// stands, except among annotations, whose keys are a map's and matched exactly.
const SPEC_FIELDS = [
  ...['schemaVersion', 'mediaType', 'artifactType', 'config', 'layers', 'manifests', 'subject', 'annotations'],
  ...['digest', 'size', 'urls', 'data', 'platform', 'fsLayers', 'history'],
  ...['architecture', 'os', 'os.version', 'os.features', 'variant', 'features'],
];
/** The characters outside ASCII that Go folds onto ASCII letters (ſ→s, Kelvin sign→k, İ/ı→i). */
const FOLDED_TO_ASCII: Readonly<Record<string, string>> = { '\u017f': 's', '\u212a': 'k', '\u0130': 'i', '\u0131': 'i' };
const foldKey = (key: string): string => key.replace(/[\u017f\u212a\u0130\u0131]/g, (c) => FOLDED_TO_ASCII[c]!).toLowerCase();
const SPEC_FIELD_BY_FOLD: ReadonlyMap<string, string> = new Map(SPEC_FIELDS.map((field) => [foldKey(field), field]));

/** Keys anywhere in `body` that a Go client reads as a spec field they are not, as `"Key" (read as key)`. */
function caseFoldedFields(body: Record<string, unknown>): string[] {
  const found: string[] = [];
  // A stack, not recursion: a manifest nests as deep as its bytes allow.
  const pending: unknown[] = [body];
  while (pending.length > 0) {
    const value = pending.pop();
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === 'object' && item !== null) pending.push(item);
    } else if (isRecord(value)) {
      for (const [key, child] of Object.entries(value)) {
        const field = SPEC_FIELD_BY_FOLD.get(foldKey(key));
        if (field !== undefined && field !== key) found.push(`${JSON.stringify(key)} (read as ${field})`);
        if (key !== 'annotations' && typeof child === 'object' && child !== null) pending.push(child);
      }
    }
  }
  return found;
}

/** The fields that make this document ambiguous, if any. */
export function ambiguousFields(body: Record<string, unknown>, mediaType: string): string[] {
  const forbidden = INDEX_TYPES.has(mediaType) ? FORBIDDEN_IN_INDEX : FORBIDDEN_IN_IMAGE;
  // Present at all counts, `null` included, as containers/image counts a present json.RawMessage.
  return [...forbidden.filter((field) => Object.hasOwn(body, field)), ...caseFoldedFields(body)];
}

function refuseAmbiguous(body: Record<string, unknown>, mediaType: string): void {
  const unexpected = ambiguousFields(body, mediaType);
  if (unexpected.length > 0) {
    throw invalid(`ambiguous manifest: a ${mediaType} may not carry ${unexpected.join(', ')}`, { unexpected });
  }
}

/**
 * Deeper than any document the specs describe (an index's platform `os.features` sit at depth 4):
 * 4 MiB of `[` parse into millions of levels, and every later reading of the stored manifest (the
 * gate, the console's trust view) cost seconds of the event loop and a gigabyte of memory
 * (adversarial testing: one anonymous trust listing stalled every client for 30 s).
 */
export const MAX_MANIFEST_DEPTH = 64;

/**
 * Whether JSON bytes nest arrays and objects deeper than `max`, in one pass and without parsing.
 * Bytes, not characters: no byte of a multi-byte UTF-8 sequence is ASCII.
 */
function nestsDeeperThan(bytes: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c)
        i++; // a backslash escapes the next byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) return true;
    } else if (b === 0x5d || b === 0x7d) depth--;
  }
  return false;
}

export function parseManifest(content: Buffer, contentType: string): ParsedManifest {
  if (nestsDeeperThan(content, MAX_MANIFEST_DEPTH)) throw invalid(`manifest nests deeper than ${MAX_MANIFEST_DEPTH} levels`);
  let body: unknown;
  try {
    body = JSON.parse(content.toString('utf8'));
  } catch (err) {
    throw invalid('manifest is not valid JSON', { error: (err as Error).message });
  }
  if (!isRecord(body)) throw invalid('manifest must be a JSON object');
  const mediaType = resolveMediaType(contentType, body);
  refuseAmbiguous(body, mediaType);
  const references: ExpectedReference[] = [];

  if (INDEX_TYPES.has(mediaType)) {
    if (!Array.isArray(body.manifests)) throw invalid('an index needs a manifests list');
    body.manifests.forEach((entry, i) => {
      const d = parseDescriptor(entry, `manifests[${i}]`);
      references.push({ digest: d.digest, size: d.size, kind: 'manifest' });
    });
  } else {
    const config = parseDescriptor(body.config, 'config');
    references.push({ digest: config.digest, size: config.size, kind: 'blob' });
    const layers = body.layers ?? [];
    if (!Array.isArray(layers)) throw invalid('layers must be a list');
    layers.forEach((entry, i) => {
      const d = parseDescriptor(entry, `layers[${i}]`);
      if (d.urls && FOREIGN_LAYER_TYPES.has(d.mediaType)) return;
      references.push({ digest: d.digest, size: d.size, kind: 'blob' });
    });
  }

  const subject = body.subject === undefined ? undefined : parseDescriptor(body.subject, 'subject').digest;
  if (body.artifactType !== undefined && typeof body.artifactType !== 'string') {
    throw invalid('artifactType must be a string');
  }
  if (body.artifactType) mediaTypeOf(body.artifactType, 'artifactType');
  // The referrers API reports artifactType, else (image manifests) the config's media type.
  const configType = isRecord(body.config) ? (body.config.mediaType as string) : undefined;
  const artifactType = body.artifactType || configType;
  const annotations = parseAnnotations(body.annotations, 'manifest');
  return {
    mediaType,
    references: dedupe(references),
    ...(subject ? { subject } : {}),
    ...(artifactType ? { artifactType } : {}),
    ...(annotations ? { annotations } : {}),
  };
}

function dedupe(references: ExpectedReference[]): ExpectedReference[] {
  const seen = new Map<string, ExpectedReference>();
  for (const ref of references) {
    const prior = seen.get(ref.digest);
    if (prior && prior.size !== ref.size) {
      throw invalid(`descriptors of ${ref.digest} disagree about its size`);
    }
    seen.set(ref.digest, ref);
  }
  return [...seen.values()];
}

/** A stored manifest's JSON object; {} for anything else (the gate and the console read fields of it). */
export function jsonObjectOf(content: Buffer): Record<string, unknown> {
  // Stored before pushes were refused for it: read as no object, without parsing it.
  if (nestsDeeperThan(content, MAX_MANIFEST_DEPTH)) return {};
  try {
    const value: unknown = JSON.parse(content.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** What the metadata store keeps of a parsed manifest: a push and a mirror's fetch store the same. */
export function manifestRecordOf(digest: string, content: Buffer, parsed: ParsedManifest): ManifestRecord {
  return {
    digest,
    mediaType: parsed.mediaType,
    content,
    size: content.length,
    ...(parsed.artifactType ? { artifactType: parsed.artifactType } : {}),
    ...(parsed.subject ? { subject: parsed.subject } : {}),
    ...(parsed.annotations ? { annotations: parsed.annotations } : {}),
  };
}
