// The workloads, each run the same way against any registry.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { LoadGenerator, LoadResult, LoadSpec } from './load.js';
import { treeCpuMs } from './machine.js';
import { ACCEPT_MANIFESTS, RegistryClient, sha256 } from './registry-client.js';
import { sampleRss, type ServerHandle } from './servers.js';

const MIB = 1024 * 1024;
export const SMALL_REPO = 'bench/small';
export const APP_REPO = 'bench/app';
export const TAGS_REPO = 'bench/tags';

/** A large layer made by repeating one random MiB, so it never sits in memory whole. */
export interface LargeLayer {
  mib: number;
  block: Buffer;
  digest: string;
}

export function makeLargeLayer(mib: number): LargeLayer {
  const block = randomBytes(MIB);
  const hash = createHash('sha256');
  for (let i = 0; i < mib; i++) hash.update(block);
  return { mib, block, digest: `sha256:${hash.digest('hex')}` };
}

export function layerStream(layer: LargeLayer): Readable {
  let sent = 0;
  return new Readable({
    highWaterMark: 4 * MIB,
    read() {
      if (sent === layer.mib) this.push(null);
      else {
        sent++;
        this.push(layer.block);
      }
    },
  });
}

export interface TransferResult {
  mibPerSecond: number;
  peakRssBytes: number;
  /** Of the server's child processes (Signet's embedded database); 0 for the Go registry. */
  peakChildrenRssBytes: number;
}

/** Pushes the layer (POST, one streamed PATCH, PUT ?digest=) while sampling the server's RSS. */
export async function pushLargeLayer(server: ServerHandle, layer: LargeLayer, repository: string): Promise<TransferResult> {
  // Write back earlier runs' dirty pages first, so this push does not pay for them.
  spawnSync('sync');
  const client = new RegistryClient(server.baseUrl, 1);
  const rss = sampleRss(server.pid);
  const started = performance.now();
  try {
    await client.pushStreamedBlob(repository, layerStream(layer), layer.digest);
  } finally {
    client.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { mibPerSecond: layer.mib / seconds, peakRssBytes: rss.stop(), peakChildrenRssBytes: rss.childrenPeak() };
}

/**
 * How a pull reads: `drain` counts the body into one reused buffer (the timed row: the client
 * stays faster than either registry), `hash` streams it through node's HTTP client and checks the
 * sha256 as it arrives (what a verifying client does; its own CPU is the bound for both).
 */
export type PullReader = 'drain' | 'hash';

/** Pulls the layer back while sampling the server's RSS. */
export async function pullLargeLayer(
  server: ServerHandle,
  layer: LargeLayer,
  repository: string,
  reader: PullReader,
): Promise<TransferResult> {
  spawnSync('sync');
  const client = new RegistryClient(server.baseUrl, 1);
  const rss = sampleRss(server.pid);
  const started = performance.now();
  let bytes: number;
  try {
    bytes = reader === 'drain' ? await client.drainBlob(repository, layer.digest) : await client.pullBlob(repository, layer.digest);
  } finally {
    client.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const peakRssBytes = rss.stop();
  if (bytes !== layer.mib * MIB) throw new Error(`pulled ${bytes} bytes, expected ${layer.mib * MIB}`);
  return { mibPerSecond: layer.mib / seconds, peakRssBytes, peakChildrenRssBytes: rss.childrenPeak() };
}

export interface RangeResult {
  mibPerSecond: number;
  /** CPU of the server's whole process tree per MiB sent. */
  cpuMsPerMib: number;
}

/** `GET` with `Range: bytes=<half>-<last>` of the layer, drained as a pull is; MiB/s of that half. */
export async function pullSecondHalf(server: ServerHandle, layer: LargeLayer, repository: string): Promise<RangeResult> {
  spawnSync('sync');
  const size = layer.mib * MIB;
  const range = { start: size / 2, end: size - 1 };
  const client = new RegistryClient(server.baseUrl, 1);
  const cpu = treeCpuMs(server.pid);
  const started = performance.now();
  let bytes: number;
  try {
    bytes = await client.drainBlob(repository, layer.digest, range);
  } finally {
    client.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const mib = (range.end - range.start + 1) / MIB;
  if (bytes !== range.end - range.start + 1) throw new Error(`pulled ${bytes} bytes, expected ${range.end - range.start + 1}`);
  return { mibPerSecond: mib / seconds, cpuMsPerMib: (treeCpuMs(server.pid) - cpu) / mib };
}

export interface SmallBlob {
  data: Buffer;
  digest: string;
}

/** Random blobs of 1-4 KiB, digests computed up front so the timed loop only does HTTP. */
export function makeSmallBlobs(count: number): SmallBlob[] {
  return Array.from({ length: count }, () => {
    const data = randomBytes(1024 + Math.floor(Math.random() * 3073));
    return { data, digest: sha256(data) };
  });
}

/** Pushes every blob (POST + PUT with body) from `concurrency` keep-alive workers; blobs/s. */
export async function pushSmallBlobs(server: ServerHandle, blobs: SmallBlob[], concurrency: number): Promise<number> {
  // As before every other timed push: earlier rows' dirty pages (the Go registry writes its layers
  // through the page cache, gigabytes of them) are written back first, not during this round,
  // where each of Signet's fsyncs queued behind them (2,000 pushes after 1.5 GB left dirty: 333
  // and 480 blobs/s against 417 and 557 after a sync).
  spawnSync('sync');
  const client = new RegistryClient(server.baseUrl, concurrency);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < blobs.length) {
      const blob = blobs[next++]!;
      await client.pushBlob(SMALL_REPO, blob.data, blob.digest);
    }
  };
  const started = performance.now();
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    client.close();
  }
  return blobs.length / ((performance.now() - started) / 1000);
}

export interface SmallImage {
  layerDigest: string;
}

/**
 * A small OCI image (config + one 2 KiB layer) tagged `latest` in APP_REPO, and the same image
 * under `tagCount` tags in TAGS_REPO.
 */
export async function pushSmallImage(server: ServerHandle, tagCount: number): Promise<SmallImage> {
  const client = new RegistryClient(server.baseUrl, 4);
  try {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBytes(2048);
    const mediaType = 'application/vnd.oci.image.manifest.v1+json';
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
      }),
    );
    for (const repository of [APP_REPO, TAGS_REPO]) {
      await client.pushBlob(repository, config);
      await client.pushBlob(repository, layer);
    }
    await client.putManifest(APP_REPO, 'latest', manifest, mediaType);
    for (let i = 0; i < tagCount; i++) {
      await client.putManifest(TAGS_REPO, `v1.${String(i).padStart(2, '0')}`, manifest, mediaType);
    }
    // Check once that each URL the load rows use answers 200 before timing anything.
    await client.expect(200, 'GET', client.url(`/v2/${APP_REPO}/manifests/latest`), { headers: { Accept: ACCEPT_MANIFESTS } });
    await client.expect(200, 'HEAD', client.url(`/v2/${APP_REPO}/blobs/${sha256(layer)}`));
    const tags = await client.expect(200, 'GET', client.url(`/v2/${TAGS_REPO}/tags/list`));
    const listed = (JSON.parse(tags.body.toString('utf8')) as { tags?: unknown[] }).tags?.length;
    if (listed !== tagCount) throw new Error(`tags/list shows ${listed} tags, expected ${tagCount}`);
    const catalog = await client.expect(200, 'GET', client.url('/v2/_catalog'));
    const repositories = (JSON.parse(catalog.body.toString('utf8')) as { repositories?: unknown[] }).repositories ?? [];
    if (!repositories.includes(TAGS_REPO)) throw new Error(`the catalog does not list ${TAGS_REPO}`);
    console.log(`  ${server.label.padEnd(12)} catalog: ${repositories.length} repositories`);
    return { layerDigest: sha256(layer) };
  } finally {
    client.close();
  }
}

/** One of the small requests rows 20-23 load (and rows 51-52 with them), against a pushed SmallImage. */
export interface SmallRequest {
  method: 'GET' | 'HEAD';
  path: (image: SmallImage) => string;
  headers: Record<string, string>;
}

/** Rows 20-23's requests, in the rows' order: manifest GET by tag, blob HEAD, tags/list, catalog. */
export const SMALL_REQUESTS = {
  manifest: { method: 'GET', path: () => `/v2/${APP_REPO}/manifests/latest`, headers: { Accept: ACCEPT_MANIFESTS } },
  head: { method: 'HEAD', path: (image) => `/v2/${APP_REPO}/blobs/${image.layerDigest}`, headers: {} },
  tags: { method: 'GET', path: () => `/v2/${TAGS_REPO}/tags/list`, headers: {} },
  // Every repository the rows before it pushed (pushSmallImage logs how many).
  catalog: { method: 'GET', path: () => '/v2/_catalog', headers: {} },
} satisfies Record<string, SmallRequest>;

export interface LoadRow extends SmallRequest {
  seconds: number;
}

/**
 * A short untimed warm-up when asked for (JIT, caches, connections), then the measured run; fails
 * when more than 1 % of its requests failed.
 */
export async function runLoad(generator: LoadGenerator, spec: LoadSpec, warmupSeconds: number): Promise<LoadResult> {
  if (warmupSeconds > 0) await generator.run({ ...spec, seconds: warmupSeconds });
  const result = await generator.run(spec);
  if (result.failed > result.ok / 100) throw new Error(`${result.failed} of ${result.ok + result.failed} requests failed`);
  return result;
}
