// Rows for issue 17's third memory goal: the whole registry under 100 MB through the bench when
// its metadata lives in an external PostgreSQL server (REGISTRY_DATABASE_URL) rather than in the
// embedded PGlite. A Signet of its own, on a fresh database of the PostgreSQL server the tests use
// (SIGNET_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres; dropped
// afterwards), runs the main workloads that move memory, in the main table's order and sizes: a
// small push, the large layer pushed, pulled and read by halves, fresh small blobs, manifest PUTs
// and the small-request loads. The PostgreSQL server's own processes are not the registry's and
// are not counted (they are not its descendants).
import { createTestDatabase, POSTGRES_ADMIN_URL } from '../test/helpers/postgres.js';
import type { LoadGenerator } from './load.js';
import { addMemoryRows, measureIdle, watchPeak } from './memory-rows.js';
import { ACCEPT_MANIFESTS, RegistryClient, sha256 } from './registry-client.js';
import { startSignet, type Resources, type ServerHandle } from './servers.js';
import { Table, type Row } from './table.js';
import {
  APP_REPO,
  makeLargeLayer,
  makeSmallBlobs,
  pullLargeLayer,
  pullSecondHalf,
  pushLargeLayer,
  pushSmallBlobs,
  pushSmallImage,
  runLoad,
  TAGS_REPO,
} from './workloads.js';

export interface PostgresRows {
  idle: Row;
  peak: Row;
}

export interface PostgresOptions {
  layerMib: number;
  layerRounds: number;
  smallBlobs: number;
  smallRounds: number;
  manifests: number;
  concurrency: number;
  connections: number;
  loadSeconds: number;
}

export function addPostgresRows(table: Table): PostgresRows {
  return {
    idle: table.add('on PostgreSQL: whole registry RSS, idle after the start and a small push', 'MB', { kind: 'info' }),
    peak: table.add('on PostgreSQL: whole registry peak RSS through the workloads (sampled every 100 ms)', 'MB', {
      kind: 'below',
      max: 100e6,
    }),
  };
}

/** `count` distinct manifests over one config and layer, pushed by `concurrency` clients. */
async function pushManifests(server: ServerHandle, count: number, concurrency: number): Promise<void> {
  const client = new RegistryClient(server.baseUrl, concurrency);
  try {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = Buffer.alloc(2048, 3);
    await client.pushBlob('bench/manifests', config);
    await client.pushBlob('bench/manifests', layer);
    const mediaType = 'application/vnd.oci.image.manifest.v1+json';
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const i = next++;
        const manifest = {
          schemaVersion: 2,
          mediaType,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
          annotations: { 'bench.index': String(i) },
        };
        await client.putManifest('bench/manifests', `m${i}`, Buffer.from(JSON.stringify(manifest)), mediaType);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    client.close();
  }
}

export async function runPostgresRows(
  resources: Resources,
  rows: PostgresRows,
  o: PostgresOptions,
  load: { get: LoadGenerator; head: LoadGenerator },
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  let database;
  try {
    database = await createTestDatabase();
  } catch (err) {
    // No server: Signet's column says why (record files figures by the label alone).
    const failure = new Error(`no PostgreSQL at ${POSTGRES_ADMIN_URL}: ${err instanceof Error ? err.message : String(err)}`);
    console.log(`bench: ${failure.message}`);
    const absent = { label: 'Signet' } as ServerHandle;
    for (const row of [rows.idle, rows.peak]) record(row, absent, failure);
    return;
  }
  const dropped = database;
  resources.defer(() => dropped.drop());
  const server = await startSignet(resources, { REGISTRY_DATABASE_URL: database.url });
  try {
    // The memory rows' own functions, on a table of their own: their figures land in this module's rows.
    const memory = addMemoryRows(new Table());
    const into = (row: Row) => (memoryRow: Row, _server: ServerHandle, value: number | Error) => {
      if (memoryRow === memory.idle || memoryRow === memory.peak) record(row, server, value);
    };
    const peak = watchPeak([server], memory);
    await measureIdle([server], memory, into(rows.idle));
    try {
      const layer = makeLargeLayer(o.layerMib);
      for (let round = 0; round < o.layerRounds; round++) {
        await pushLargeLayer(server, layer, `bench/layer-${round + 1}`);
        await pullLargeLayer(server, layer, `bench/layer-${round + 1}`, 'drain');
        await pullSecondHalf(server, layer, `bench/layer-${round + 1}`);
      }
      for (let round = 0; round < o.smallRounds; round++) await pushSmallBlobs(server, makeSmallBlobs(o.smallBlobs), o.concurrency);
      await pushManifests(server, o.manifests, o.concurrency);
      const image = await pushSmallImage(server, 50);
      const paths: [LoadGenerator, 'GET' | 'HEAD', string, Record<string, string>][] = [
        [load.get, 'GET', `/v2/${APP_REPO}/manifests/latest`, { Accept: ACCEPT_MANIFESTS }],
        [load.head, 'HEAD', `/v2/${APP_REPO}/blobs/${image.layerDigest}`, {}],
        [load.get, 'GET', `/v2/${TAGS_REPO}/tags/list`, {}],
        [load.get, 'GET', '/v2/_catalog', {}],
      ];
      for (const [generator, method, urlPath, headers] of paths) {
        const url = `${server.baseUrl}${urlPath}`;
        await runLoad(generator, { url, method, headers, connections: o.connections, seconds: o.loadSeconds }, 0);
      }
    } finally {
      peak.stop(into(rows.peak));
    }
  } finally {
    await server.stop();
  }
}
