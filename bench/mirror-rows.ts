// Rows for mirror projects (issue 19): a Go registry as the upstream and a Signet of its own with
// a mirror project in front of it. Each round pushes a fresh layer to the upstream (and the same
// layer into a project of Signet's own), then times, reading as row 2 does (a raw socket counting
// bytes): a direct pull from the upstream; a cold pull through the mirror (fetched from the
// upstream, stored and hashed while it streams to the client); a warm pull through the mirror
// (served from storage); and Signet's own pull of the pushed copy. Targets: cold at least 0.8x the
// direct upstream pull, warm at least as fast as Signet's own pull (it is the same code path once
// stored), and the server's peak RSS during cold pulls flat in the layer's size.
import { spawnSync } from 'node:child_process';
import { RegistryClient } from './registry-client.js';
import { sampleRss, startGoRegistry, startNodeRelay, startSignet, type Resources, type ServerHandle } from './servers.js';
import { inTurn } from './rounds.js';
import { median, type Row, type Table } from './table.js';
import { makeLargeLayer, pushLargeLayer, type LargeLayer } from './workloads.js';

export interface MirrorRows {
  cold: Row;
  push: Row;
  own: Row;
  warm: Row;
  rss: Row;
}

export function addMirrorRows(table: Table, mib: number, rounds: number): MirrorRows {
  const cold = table.add(`cold pull ${mib} MiB through a mirror vs direct from its upstream (median of ${rounds})`, 'MiB/s', {
    kind: 'ratio',
    min: 0.8,
  });
  // What storing costs on this machine (hash, write, fsync): the ceiling of a cold pull, which stores as it sends.
  const push = table.add(`Signet's own push ${mib} MiB, same server (median of ${rounds})`, 'MiB/s', { kind: 'info' });
  const own = table.add(`Signet's own pull ${mib} MiB, same server (median of ${rounds})`, 'MiB/s', { kind: 'info' });
  const warm = table.add(`warm pull ${mib} MiB through the mirror (median of ${rounds})`, 'MiB/s', { kind: 'of-row', row: own, min: 1 });
  // The whole registry (the embedded database is a thread of the server): issue 17's bound of 200 MB.
  const rss = table.add(`peak RSS during cold pulls of ${mib} MiB`, 'MB', { kind: 'under', max: 200 });
  return { cold, push, own, warm, rss };
}

/** Drains a blob over a fresh connection; MiB/s. */
async function timedPull(server: ServerHandle, repository: string, layer: LargeLayer): Promise<number> {
  spawnSync('sync');
  const client = new RegistryClient(server.baseUrl, 1);
  const started = performance.now();
  try {
    const bytes = await client.drainBlob(repository, layer.digest);
    if (bytes !== layer.mib * 1024 * 1024) throw new Error(`pulled ${bytes} bytes, expected ${layer.mib * 1024 * 1024}`);
  } finally {
    client.close();
  }
  return layer.mib / ((performance.now() - started) / 1000);
}

export async function runMirrorRows(
  resources: Resources,
  rows: MirrorRows,
  options: { mib: number; rounds: number },
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const upstream = await startGoRegistry(resources);
  // Not a row: the same pull through a bare node relay, printed beside the rows as the ceiling of
  // a cold pull on this machine (the mirror passes the bytes through one node process too).
  const relay = await startNodeRelay(resources, upstream);
  const signet = await startSignet(
    resources,
    process.env.BENCH_MIRROR_DIRECTIO === 'false' ? { REGISTRY_STORAGE_FILESYSTEM_DIRECTIO: 'false' } : {},
    'Signet',
  );
  const all = [rows.cold, rows.push, rows.own, rows.warm, rows.rss];
  try {
    const api = async (method: string, urlPath: string, body: unknown): Promise<void> => {
      const res = await fetch(`${signet.baseUrl}${urlPath}`, {
        method,
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status >= 300) throw new Error(`${method} ${urlPath}: ${res.status} ${await res.text()}`);
    };
    await api('POST', '/api/v1/projects', { name: 'mirror', mirror: { upstream: upstream.baseUrl } });
    await api('POST', '/api/v1/projects', { name: 'own' });
    const figures = {
      cold: [] as number[],
      direct: [] as number[],
      relay: [] as number[],
      push: [] as number[],
      own: [] as number[],
      warm: [] as number[],
      rss: 0,
    };
    for (let round = 1; round <= options.rounds; round++) {
      // Two layers: each of Signet's pulls is the first read of its own file (pushes and the
      // mirror's writes bypass the page cache), as row 2's pull is.
      const layer = makeLargeLayer(options.mib);
      const ownLayer = makeLargeLayer(options.mib);
      const repository = `bench/mirrored-${round}`;
      await pushLargeLayer(upstream, layer, repository);
      figures.push.push((await pushLargeLayer(signet, ownLayer, `own/${repository}`)).mibPerSecond);
      const direct = await timedPull(upstream, repository, layer);
      const relayed = await timedPull(relay, repository, layer);
      figures.relay.push(relayed);
      const rss = sampleRss(signet.pid);
      const cold = await timedPull(signet, `mirror/${repository}`, layer);
      figures.rss = Math.max(figures.rss, rss.stop());
      // The two pulls compared read files of the same size from disk by the same code. Always
      // second, the own pull never followed the cold pull's 256 MiB write directly, and in five
      // full runs it read 1-9% faster; the order alternates between rounds, so neither pull
      // carries the position.
      const pullWarm = (): Promise<number> => timedPull(signet, `mirror/${repository}`, layer);
      const pullOwn = (): Promise<number> => timedPull(signet, `own/${repository}`, ownLayer);
      const [warm, own] = await inTurn(pullWarm, pullOwn, round % 2 === 0);
      figures.direct.push(direct);
      figures.cold.push(cold);
      figures.warm.push(warm);
      figures.own.push(own);
      console.log(
        `  mirror round ${round}: direct from upstream ${direct.toFixed(1)} MiB/s, through a bare node relay ${relayed.toFixed(1)} MiB/s, ` +
          `cold through the mirror ${cold.toFixed(1)} MiB/s, ` +
          `warm ${warm.toFixed(1)} MiB/s, Signet's own pull ${own.toFixed(1)} MiB/s, push ${figures.push.at(-1)!.toFixed(1)} MiB/s`,
      );
    }
    console.log(
      `  bare node relay (request to response, nothing hashed or stored): ${median(figures.relay).toFixed(1)} MiB/s, ` +
        `${(median(figures.relay) / median(figures.direct)).toFixed(2)}x the direct pull: the ceiling of the cold pull here`,
    );
    record(rows.cold, signet, median(figures.cold));
    record(rows.cold, upstream, median(figures.direct));
    record(rows.push, signet, median(figures.push));
    record(rows.own, signet, median(figures.own));
    record(rows.warm, signet, median(figures.warm));
    record(rows.rss, signet, figures.rss / 1e6);
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    for (const row of all) record(row, signet, error);
  } finally {
    await signet.stop();
    await relay.stop();
    await upstream.stop();
  }
}
