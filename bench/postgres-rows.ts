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
import { pushManifests, type ManifestOptions } from './manifest-rows.js';
import { measureIdle, watchPeak, type MemoryRows } from './memory-rows.js';
import { startSignet, type Resources, type ServerHandle } from './servers.js';
import type { Row, Table } from './table.js';
import {
  makeLargeLayer,
  makeSmallBlobs,
  pullLargeLayer,
  pullSecondHalf,
  pushLargeLayer,
  pushSmallBlobs,
  pushSmallImage,
  runLoad,
  SMALL_REQUESTS,
} from './workloads.js';

/** The memory rows' shape: bench/memory-rows.ts measures into them as it does for rows 31-32. */
export type PostgresRows = MemoryRows;

export interface PostgresOptions {
  layerMib: number;
  layerRounds: number;
  smallBlobs: number;
  smallRounds: number;
  /** Row 18's rounds of manifest PUTs, pushed the same way. */
  manifests: ManifestOptions;
  concurrency: number;
  /** Tags of the small image rows 20-23 load (tags/list lists them). */
  tagCount: number;
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
    const peak = watchPeak([server], rows);
    await measureIdle([server], rows, record);
    try {
      const layer = makeLargeLayer(o.layerMib);
      for (let round = 0; round < o.layerRounds; round++) {
        await pushLargeLayer(server, layer, `bench/layer-${round + 1}`);
        await pullLargeLayer(server, layer, `bench/layer-${round + 1}`, 'drain');
        await pullSecondHalf(server, layer, `bench/layer-${round + 1}`);
      }
      for (let round = 0; round < o.smallRounds; round++) await pushSmallBlobs(server, makeSmallBlobs(o.smallBlobs), o.concurrency);
      for (let round = 0; round < o.manifests.rounds; round++) await pushManifests(server, o.manifests, round);
      const image = await pushSmallImage(server, o.tagCount);
      for (const request of Object.values(SMALL_REQUESTS)) {
        const url = `${server.baseUrl}${request.path(image)}`;
        const generator = request.method === 'HEAD' ? load.head : load.get;
        await runLoad(
          generator,
          { url, method: request.method, headers: request.headers, connections: o.connections, seconds: o.loadSeconds },
          0,
        );
      }
    } finally {
      peak.stop(record);
    }
  } finally {
    await server.stop();
  }
}
