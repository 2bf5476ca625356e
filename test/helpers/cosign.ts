// Cosign signatures built with node's crypto in cosign's exact format: a payload blob, an OCI
// manifest at `sha256-<hex>.sig` whose layer carries the base64 ECDSA signature as an annotation.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { blobOf, OCI_MANIFEST, type Blob } from './oci-layout.js';

export interface CosignKeyPair {
  privateKey: KeyObject;
  publicPem: string;
}

export function makeCosignKey(): CosignKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

export interface CosignSignature {
  payload: Blob;
  config: Blob;
  manifest: Blob;
  tag: string;
}

export function cosignSign(key: CosignKeyPair, digest: string, dockerReference: string): CosignSignature {
  const payload = blobOf(
    Buffer.from(
      JSON.stringify({
        critical: {
          identity: { 'docker-reference': dockerReference },
          image: { 'docker-manifest-digest': digest },
          type: 'cosign container image signature',
        },
        optional: null,
      }),
    ),
    'application/vnd.dev.cosign.simplesigning.v1+json',
  );
  const signature = sign('sha256', payload.data, key.privateKey).toString('base64');
  const config = blobOf(
    Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [] } })),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: [
          {
            mediaType: payload.mediaType,
            digest: payload.digest,
            size: payload.size,
            annotations: { 'dev.cosignproject.cosign/signature': signature },
          },
        ],
      }),
    ),
    OCI_MANIFEST,
  );
  return { payload, config, manifest, tag: `${digest.replace(':', '-')}.sig` };
}
