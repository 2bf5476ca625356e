// Signature artifacts as the signing tools push them, built in the test: cosign's `.sig` manifest
// in the exact form `cosign sign` writes (go-containerregistry's config, payload naming only the
// repository), a sigstore bundle referrer (cosign v3), a Notation JWS referrer and a cosign
// attestation (DSSE), each with the blobs to push first.
import { randomBytes, sign as cryptoSign } from 'node:crypto';
import type { CosignKeyPair } from './cosign.js';
import { blobOf, OCI_MANIFEST, type Blob } from './oci-layout.js';

export const COSIGN_SIMPLESIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const EMPTY_CONFIG = blobOf(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');

export interface Artifact {
  /** Blobs to push before the manifest (config and layers). */
  blobs: Blob[];
  manifest: Blob;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  urls?: string[];
  artifactType?: string;
}

export const descriptorOf = (blob: Blob, extra: Partial<Descriptor> = {}): Descriptor => ({
  mediaType: blob.mediaType,
  digest: blob.digest,
  size: blob.size,
  ...extra,
});

export function manifestOf(body: Record<string, unknown>, mediaType = OCI_MANIFEST): Blob {
  return blobOf(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, ...body })), mediaType);
}

/** cosign's payload: with `cosign sign`, the identity is the repository only and `optional` is null. */
export function cosignPayload(digest: string, dockerReference: string, optional: Record<string, unknown> | null = null): Blob {
  return blobOf(
    Buffer.from(
      JSON.stringify({
        critical: {
          identity: { 'docker-reference': dockerReference },
          image: { 'docker-manifest-digest': digest },
          type: 'cosign container image signature',
        },
        optional,
      }),
    ),
    COSIGN_SIMPLESIGNING,
  );
}

/** go-containerregistry's config for an image of static layers, as cosign pushes it. */
export function cosignConfig(layers: Blob[]): Blob {
  const zero = '0001-01-01T00:00:00Z';
  return blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: '',
        created: zero,
        history: [{ created: zero }],
        os: '',
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
        config: {},
      }),
    ),
    'application/vnd.oci.image.config.v1+json',
  );
}

/**
 * What `cosign sign --key k <host>/<repo>@<digest>` pushes to `<repo>:sha256-<hex>.sig`: one
 * simple-signing layer whose annotation is the base64 ECDSA-SHA256 signature over the payload.
 */
export function cosignSignatureManifest(
  key: CosignKeyPair,
  digest: string,
  dockerReference: string,
): Artifact & { tag: string; payload: Blob } {
  const payload = cosignPayload(digest, dockerReference);
  const signature = cryptoSign('sha256', payload.data, key.privateKey).toString('base64');
  const config = cosignConfig([payload]);
  const manifest = manifestOf({
    config: descriptorOf(config),
    layers: [descriptorOf(payload, { annotations: { 'dev.cosignproject.cosign/signature': signature } })],
  });
  return { blobs: [config, payload], manifest, payload, tag: `${digest.replace(':', '-')}.sig` };
}

/** A sigstore bundle (v0.3) with a message signature, as cosign v3 attaches it as a referrer. */
export function sigstoreBundleReferrer(subject: Blob): Artifact {
  const bundleType = 'application/vnd.dev.sigstore.bundle.v0.3+json';
  const bundle = blobOf(
    Buffer.from(
      JSON.stringify({
        mediaType: bundleType,
        verificationMaterial: { publicKey: { hint: randomBytes(8).toString('hex') }, tlogEntries: [] },
        messageSignature: {
          messageDigest: { algorithm: 'SHA2_256', digest: randomBytes(32).toString('base64') },
          signature: randomBytes(64).toString('base64'),
        },
      }),
    ),
    bundleType,
  );
  const manifest = manifestOf({
    artifactType: bundleType,
    config: descriptorOf(EMPTY_CONFIG),
    layers: [descriptorOf(bundle)],
    subject: descriptorOf(subject),
    annotations: { 'dev.sigstore.bundle.predicateType': 'https://sigstore.dev/cosign/sign/v1' },
  });
  return { blobs: [EMPTY_CONFIG, bundle], manifest };
}

const b64url = (value: object | Buffer): string =>
  (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString('base64url');

/** A Notation signature in the JWS envelope, attached as a referrer. */
export function notationReferrer(subject: Blob): Artifact {
  const envelope = blobOf(
    Buffer.from(
      JSON.stringify({
        payload: b64url({ targetArtifact: descriptorOf(subject) }),
        protected: b64url({ alg: 'PS256', cty: 'application/vnd.cncf.notary.payload.v1+json' }),
        header: { x5c: [randomBytes(32).toString('base64')] },
        signature: b64url(randomBytes(256)),
      }),
    ),
    'application/jose+json',
  );
  const manifest = manifestOf({
    artifactType: 'application/vnd.cncf.notary.signature',
    config: descriptorOf(EMPTY_CONFIG),
    layers: [descriptorOf(envelope)],
    subject: descriptorOf(subject),
  });
  return { blobs: [EMPTY_CONFIG, envelope], manifest };
}

/** A cosign attestation (`.att`): a DSSE envelope layer. */
export function cosignAttestation(subject: Blob): Artifact & { tag: string } {
  const envelope = blobOf(
    Buffer.from(
      JSON.stringify({
        payloadType: 'application/vnd.in-toto+json',
        payload: Buffer.from(
          JSON.stringify({ _type: 'https://in-toto.io/Statement/v0.1', subject: [{ digest: { sha256: subject.digest.slice(7) } }] }),
        ).toString('base64'),
        signatures: [{ keyid: '', sig: randomBytes(64).toString('base64') }],
      }),
    ),
    'application/vnd.dsse.envelope.v1+json',
  );
  const config = cosignConfig([envelope]);
  const manifest = manifestOf({ config: descriptorOf(config), layers: [descriptorOf(envelope)] });
  return { blobs: [config, envelope], manifest, tag: `${subject.digest.replace(':', '-')}.att` };
}

// JSON that is also a tar archive. A V7 tar header can be printable ASCII throughout (numbers in
// octal digits, no "ustar" magic, names and padding of printable characters), so a JSON string can
// hold a whole archive: the first header's name begins with the JSON's own opening, every file's
// content is printable text without `"` or `\\`, and the JSON closes in the last file's content,
// padded with spaces to the block. Blocks of junk may come first (GNU tar skips ahead to a block
// that checks out). The hostile member's layer, found by adversarial testing.
const octal = (value: number, width: number): string => value.toString(8).padStart(width, '0');

function v7Header(name: string, size: number, opening = ''): string {
  // Slashes before the name: readers clean them away (a path relative to the layer's root).
  let header = `${opening}${name.padStart(100 - opening.length, '/')}${octal(0o755, 8)}${octal(0, 8)}${octal(0, 8)}`;
  header += `${octal(size, 12)}${octal(1_700_000_000, 12)}${' '.repeat(8)}0${'L'.repeat(100)}`;
  header = header.padEnd(512, 'P');
  const sum = [...header].reduce((total, c) => total + c.charCodeAt(0), 0);
  return `${header.slice(0, 148)}${octal(sum, 7)} ${header.slice(156)}`;
}

export interface PolyglotFile {
  name: string;
  content: string;
}

export function jsonTarPolyglot(files: PolyglotFile[], wrapper: { opening: string; closing: string }, junkBlocks = 0): Buffer {
  // Junk blocks hold no header: a checksum field of letters never checks out.
  let text = junkBlocks > 0 ? wrapper.opening + 'j'.repeat(512 * junkBlocks - wrapper.opening.length) : '';
  files.forEach((file, i) => {
    const opening = i === 0 && junkBlocks === 0 ? wrapper.opening : '';
    const last = i === files.length - 1;
    let body = last ? file.content + wrapper.closing : file.content;
    body += ' '.repeat((512 - (body.length % 512)) % 512);
    text += v7Header(file.name, last ? body.length : file.content.length, opening) + body;
  });
  return Buffer.from(text, 'latin1');
}

export const POLYGLOT_WRAPPERS = {
  dsse: {
    mediaType: 'application/vnd.dsse.envelope.v1+json',
    opening: '{"payloadType":"',
    closing: '","payload":"","signatures":[{"sig":"x"}]}',
  },
  // cosign's payload takes any `optional` fields; JSON's key order is free, so they come first.
  cosign: {
    mediaType: COSIGN_SIMPLESIGNING,
    opening: '{"optional":{"x":"',
    closing: `"},"critical":${JSON.stringify((JSON.parse(cosignPayload(`sha256:${'0'.repeat(64)}`, 'registry.example.com/team/app').data.toString()) as { critical: unknown }).critical)}}`,
  },
};
