// Reads back what a client wrote: an OCI layout (`skopeo copy ... oci:DIR`) or a `dir:` copy
// (manifest.json verbatim, blobs named by hex digest), so tests can compare bytes with what was
// pushed.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256 } from './oci-layout.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string };
}

export interface LayoutIndex {
  manifests: Descriptor[];
}

export async function readLayoutIndex(dir: string): Promise<LayoutIndex> {
  return JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as LayoutIndex;
}

/** A blob of an OCI layout, checked against its digest. */
export async function readLayoutBlob(dir: string, digest: string): Promise<Buffer> {
  const [algorithm, hex] = digest.split(':');
  const data = await readFile(path.join(dir, 'blobs', algorithm ?? '', hex ?? ''));
  if (sha256(data) !== digest) throw new Error(`${dir}: blob ${digest} holds content with digest ${sha256(data)}`);
  return data;
}

/** The only manifest an OCI layout names under `tag`. */
export async function layoutTop(dir: string, tag: string): Promise<Descriptor> {
  const index = await readLayoutIndex(dir);
  const named = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (named.length !== 1) throw new Error(`${dir}: expected one manifest tagged ${tag}, found ${JSON.stringify(index.manifests)}`);
  return named[0]!;
}

export interface DirCopy {
  manifest: Buffer;
  /** Every layer and config blob, by digest. */
  blobs: Map<string, Buffer>;
}

/** A `skopeo copy ... dir:DIR` result: manifest.json as the registry served it, and its blobs. */
export async function readDirCopy(dir: string): Promise<DirCopy> {
  const manifest = await readFile(path.join(dir, 'manifest.json'));
  const parsed = JSON.parse(manifest.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  const blobs = new Map<string, Buffer>();
  for (const descriptor of [parsed.config, ...parsed.layers]) {
    const data = await readFile(path.join(dir, descriptor.digest.slice('sha256:'.length)));
    if (sha256(data) !== descriptor.digest) throw new Error(`${dir}: blob ${descriptor.digest} has digest ${sha256(data)}`);
    blobs.set(descriptor.digest, data);
  }
  return { manifest, blobs };
}
