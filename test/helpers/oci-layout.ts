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

/** Files of a layer (or of a `docker import` / `podman import` tarball): path → content. */
export type Files = Record<string, Buffer>;

function tarHeader(name: string, size: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(512);
  header.write(name, 0, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(size.toString(8).padStart(11, '0') + '\0', 124);
  header.write(mtime.toString(8).padStart(11, '0') + '\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return header;
}

/** An uncompressed ustar archive of regular files at the top level. */
export function tarOf(files: Files): Buffer {
  const mtime = Math.floor(Date.now() / 1000);
  const parts: Buffer[] = [];
  for (const [name, content] of Object.entries(files)) {
    parts.push(tarHeader(name, content.length, mtime), content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Random files, named after the test so a failure shows whose they are. */
/** A gzipped tar holding one file of random content: a valid layer for every client. */
export function randomLayer(bytes = 1024): Blob {
  return blobOf(gzipSync(tarOf({ [`file-${randomBytes(4).toString('hex')}`]: randomBytes(bytes) })), OCI_LAYER);
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
  return imageOf(
    { ...platform, created: new Date().toISOString(), config: {}, rootfs: { type: 'layers', diff_ids: diffIds } },
    layers,
    platform,
  );
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
