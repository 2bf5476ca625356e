// Builds OCI image layouts on disk (as `skopeo copy oci:` reads them) and image content in memory,
// from random bytes, so tests never need a network or a prebuilt image.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface Blob {
  digest: string;
  size: number;
  data: Buffer;
  mediaType: string;
}

export interface Image {
  config: Blob;
  layers: Blob[];
  manifest: Blob;
  platform: { os: string; architecture: string };
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function blobOf(data: Buffer, mediaType: string): Blob {
  return { digest: sha256(data), size: data.length, data, mediaType };
}

/** A gzipped tar holding one file of random content: a valid layer for every client. */
export function randomLayer(bytes = 1024): Blob {
  const name = `file-${randomBytes(4).toString('hex')}`;
  const content = randomBytes(bytes);
  const header = Buffer.alloc(512);
  header.write(name, 0, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, '0') + '\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  const tar = Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
  return blobOf(gzipSync(tar), OCI_LAYER);
}

/** An image manifest over a config (given as its JSON) and layers. */
export function imageOf(configJson: object, layers: Blob[], platform: Image['platform']): Image {
  const config = blobOf(Buffer.from(JSON.stringify(configJson)), OCI_CONFIG);
  const manifest = blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      }),
    ),
    OCI_MANIFEST,
  );
  return { config, layers, manifest, platform };
}

export function makeImage(options: { layers?: number; layerBytes?: number; os?: string; architecture?: string } = {}): Image {
  const platform = { os: options.os ?? 'linux', architecture: options.architecture ?? 'amd64' };
  const layers = Array.from({ length: options.layers ?? 2 }, () => randomLayer(options.layerBytes));
  const diffIds = layers.map(() => sha256(randomBytes(8))); // not checked by registries or skopeo copy
  return imageOf({ ...platform, created: new Date().toISOString(), config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }, layers, platform);
}

export function makeIndex(images: Image[]): Blob {
  return blobOf(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: images.map((i) => ({
          mediaType: i.manifest.mediaType,
          digest: i.manifest.digest,
          size: i.manifest.size,
          platform: i.platform,
        })),
      }),
    ),
    OCI_INDEX,
  );
}

/** Writes an OCI layout whose index.json names `top` (a manifest or an index) with `tag`. */
export async function writeOciLayout(dir: string, images: Image[], top: Blob, tag = 'latest'): Promise<void> {
  const blobsDir = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobsDir, { recursive: true });
  const all = [top, ...images.flatMap((i) => [i.config, i.manifest, ...i.layers])];
  for (const blob of all) await writeFile(path.join(blobsDir, blob.digest.slice('sha256:'.length)), blob.data);
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: top.mediaType,
          digest: top.digest,
          size: top.size,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
}
