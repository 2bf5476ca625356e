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
