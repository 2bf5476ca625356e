// Rows for the memory of a whole registry (issue 17): its process and all its descendants, so
// Signet's embedded database counts whether it runs as a child process or inside the server.
// VmRSS summed over the tree: pages a child shares with the server (the node binary's code) count
// twice, as adding up `ps` figures does; each sample prints the descendants' file-backed share.
import { RegistryClient, sha256 } from './registry-client.js';
import { treeRss, type ServerHandle, type TreeRss } from './servers.js';
import type { Row, Table } from './table.js';

const IDLE_SETTLE_MS = 1000;

export interface MemoryRows {
  idle: Row;
  peak: Row;
}

export function addMemoryRows(table: Table): MemoryRows {
  return {
    idle: table.add('whole registry RSS, idle after the start and a small push', 'MB', { kind: 'below', max: 150e6 }),
    peak: table.add('whole registry peak RSS through the bench (sampled every 100 ms)', 'MB', { kind: 'below', max: 200e6 }),
  };
}

function describe(rss: TreeRss): string {
  const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
  return `${mb(rss.total)} MB (server ${mb(rss.server)} MB, its processes ${mb(rss.descendants)} MB of which ${mb(rss.descendantsFile)} MB file-backed)`;
}

/** A config, a 2 KiB layer and a manifest naming them: the smallest push an image takes. */
async function pushTinyImage(server: ServerHandle): Promise<void> {
  const client = new RegistryClient(server.baseUrl, 1);
  try {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = Buffer.alloc(2048, 7);
    await client.pushBlob('bench/idle', config);
    await client.pushBlob('bench/idle', layer);
    const mediaType = 'application/vnd.oci.image.manifest.v1+json';
    const manifest = {
      schemaVersion: 2,
      mediaType,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    };
    await client.putManifest('bench/idle', 'latest', Buffer.from(JSON.stringify(manifest)), mediaType);
  } finally {
    client.close();
  }
}

/** Right after the start: a small push, a second to settle, then the tree's resident set. */
export async function measureIdle(
  servers: ServerHandle[],
  rows: MemoryRows,
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  for (const server of servers) {
    try {
      await pushTinyImage(server);
      await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_MS));
      const rss = treeRss(server.pid);
      console.log(`  ${server.label.padEnd(12)} idle after a small push: ${describe(rss)}`);
      record(rows.idle, server, rss.total / 1e6);
    } catch (err) {
      record(rows.idle, server, err instanceof Error ? err : new Error(String(err)));
    }
  }
}

export interface PeakWatch {
  /** Stops sampling and records each registry's peak. */
  stop(record: (row: Row, server: ServerHandle, value: number | Error) => void): void;
}

/** Samples each registry's whole tree every 100 ms from now until `stop`. */
export function watchPeak(servers: ServerHandle[], rows: MemoryRows): PeakWatch {
  const peaks = new Map<ServerHandle, TreeRss>(servers.map((s) => [s, treeRss(s.pid)]));
  const sample = (): void => {
    for (const server of servers) {
      const rss = treeRss(server.pid);
      if (rss.total > peaks.get(server)!.total) peaks.set(server, rss);
    }
  };
  const timer = setInterval(sample, 100);
  return {
    stop(record) {
      clearInterval(timer);
      sample();
      for (const [server, peak] of peaks) {
        console.log(`  ${server.label.padEnd(12)} whole registry peak: ${describe(peak)}`);
        record(rows.peak, server, peak.total / 1e6);
      }
    },
  };
}
