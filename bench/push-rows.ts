// Pushes the layer rows (1-3) do not cover (issue 17), each with the CPU the registry's whole
// process tree spent per MiB: a blob sent as 8 MiB PATCHes with Content-Range; a monolithic push
// (POST, then PUT with the body) and a streamed one (one PATCH without Content-Range) of a big
// blob, beside the machine's bound for "HTTP body → sha256 → file" measured in the same rounds
// (bench/body-sink.ts); and the first push on a freshly started server. Every push is of a blob
// new to the registry, in rounds alternating between the registries; the median counts.
import { spawnSync } from 'node:child_process';
import { treeCpuMs } from './machine.js';
import { RegistryClient } from './registry-client.js';
import { alternate, medianOf } from './rounds.js';
import { startBodySink, startGoRegistry, startSignet, type Resources, type ServerHandle } from './servers.js';
import type { Row, Table } from './table.js';
import { layerStream, makeLargeLayer, type LargeLayer } from './workloads.js';

const MIB = 1024 * 1024;
const CHUNK_MIB = 8;

export interface PushOptions {
  /** Size of the blob sent in 8 MiB chunks. */
  chunkedMib: number;
  /** Size of the monolithic and streamed pushes. */
  bigMib: number;
  /** Size of the first push on a fresh server. */
  firstMib: number;
  rounds: number;
  /** Each round starts a fresh server of each kind. */
  firstRounds: number;
}

export interface PushRows {
  chunked: Row;
  chunkedCpu: Row;
  monolithic: Row;
  monolithicCpu: Row;
  streamed: Row;
  streamedCpu: Row;
  bound: Row;
  monolithicOfBound: Row;
  streamedOfBound: Row;
  first: Row;
  firstCpu: Row;
}

export function addPushRows(table: Table, o: PushOptions): PushRows {
  const cpu = (what: string): Row => table.add(`${what}: registry CPU per MiB (server and its processes)`, 'ms/MiB', { kind: 'info' });
  const chunked = table.add(`chunked push ${o.chunkedMib} MiB as ${CHUNK_MIB} MiB PATCHes (median of ${o.rounds})`, 'MiB/s', {
    kind: 'ratio',
    min: 1,
  });
  const chunkedCpu = cpu('chunked push');
  const monolithic = table.add(`monolithic push ${o.bigMib} MiB, POST then PUT (median of ${o.rounds})`, 'MiB/s', {
    kind: 'ratio',
    min: 1,
  });
  const monolithicCpu = cpu('monolithic push');
  const streamed = table.add(`streamed push ${o.bigMib} MiB, one PATCH (median of ${o.rounds})`, 'MiB/s', { kind: 'ratio', min: 1 });
  const streamedCpu = cpu('streamed push');
  const bound = table.add(`machine bound, HTTP body → sha256 → file, ${o.bigMib} MiB (a node sink, no registry)`, 'MiB/s', {
    kind: 'info',
  });
  const monolithicOfBound = table.add(`monolithic push ${o.bigMib} MiB, share of the machine bound`, 'MiB/s', {
    kind: 'of-row',
    row: bound,
    min: 0.7,
  });
  const streamedOfBound = table.add(`streamed push ${o.bigMib} MiB, share of the machine bound`, 'MiB/s', {
    kind: 'of-row',
    row: bound,
    min: 0.7,
  });
  const first = table.add(`first push ${o.firstMib} MiB on a fresh server (median of ${o.firstRounds})`, 'MiB/s', {
    kind: 'ratio',
    min: 1,
  });
  const firstCpu = cpu('first push');
  return {
    chunked,
    chunkedCpu,
    monolithic,
    monolithicCpu,
    streamed,
    streamedCpu,
    bound,
    monolithicOfBound,
    streamedOfBound,
    first,
    firstCpu,
  };
}

interface Timed {
  mibPerSecond: number;
  cpuMsPerMib: number;
}

/** One push over its own connection, after a `sync` (earlier pushes' dirty pages are not its cost). */
async function timed(target: ServerHandle, mib: number, push: (client: RegistryClient) => Promise<void>): Promise<Timed> {
  spawnSync('sync');
  const client = new RegistryClient(target.baseUrl, 1);
  const cpu = treeCpuMs(target.pid);
  const started = performance.now();
  try {
    await push(client);
  } finally {
    client.close();
  }
  const seconds = (performance.now() - started) / 1000;
  return { mibPerSecond: mib / seconds, cpuMsPerMib: (treeCpuMs(target.pid) - cpu) / mib };
}

function show(target: ServerHandle, what: string, round: number, t: Timed): void {
  console.log(
    `  ${target.label.padEnd(12)} round ${round + 1}: ${what} ${t.mibPerSecond.toFixed(1)} MiB/s, ${t.cpuMsPerMib.toFixed(2)} ms CPU/MiB`,
  );
}

/** The same layer for every registry in a round, a new one each round: every push stores. */
function perRound(mib: number): (round: number) => LargeLayer {
  const layers = new Map<number, LargeLayer>();
  return (round) => {
    if (!layers.has(round)) {
      layers.clear();
      layers.set(round, makeLargeLayer(mib));
    }
    return layers.get(round)!;
  };
}

type Record = (row: Row, server: ServerHandle, value: number | Error) => void;

async function runChunked(servers: ServerHandle[], rows: PushRows, o: PushOptions, record: Record): Promise<void> {
  const layer = perRound(o.chunkedMib);
  const results = await alternate(servers, o.rounds, 'chunked push', async (server, round) => {
    const l = layer(round);
    const chunk = Buffer.concat(Array.from({ length: CHUNK_MIB }, () => l.block));
    const t = await timed(server, l.mib, (c) => c.pushChunkedBlob(`bench/chunked-${round + 1}`, chunk, l.mib / CHUNK_MIB, l.digest));
    show(server, 'chunked push', round, t);
    return t;
  });
  for (const [server, r] of results) {
    record(
      rows.chunked,
      server,
      medianOf(r, (t) => t.mibPerSecond),
    );
    record(
      rows.chunkedCpu,
      server,
      medianOf(r, (t) => t.cpuMsPerMib),
    );
  }
}

/** The body sink takes the monolithic push's layer as one PUT with its length. */
async function pushToSink(client: RegistryClient, l: LargeLayer): Promise<void> {
  const res = await client.expect(201, 'PUT', client.url('/body'), {
    body: layerStream(l),
    headers: { 'Content-Length': String(l.mib * MIB) },
  });
  const digest = res.headers['docker-content-digest'];
  if (digest !== l.digest) throw new Error(`the sink hashed ${String(digest)}`);
}

async function runBig(resources: Resources, servers: ServerHandle[], rows: PushRows, o: PushOptions, record: Record): Promise<void> {
  const sink = await startBodySink(resources);
  const monolithicLayer = perRound(o.bigMib);
  const streamedLayer = perRound(o.bigMib);
  try {
    const results = await alternate([...servers, sink], o.rounds, 'big push', async (target, round) => {
      const mono = monolithicLayer(round);
      if (target === sink) {
        const t = await timed(sink, mono.mib, (c) => pushToSink(c, mono));
        show(sink, 'bound', round, t);
        return { monolithic: t, streamed: t };
      }
      const monolithic = await timed(target, mono.mib, (c) =>
        c.pushMonolithicBlob(`bench/monolithic-${round + 1}`, layerStream(mono), mono.mib * MIB, mono.digest),
      );
      show(target, 'monolithic push', round, monolithic);
      const s = streamedLayer(round);
      const streamed = await timed(target, s.mib, (c) => c.pushStreamedBlob(`bench/streamed-${round + 1}`, layerStream(s), s.digest));
      show(target, 'streamed push', round, streamed);
      return { monolithic, streamed };
    });
    for (const [target, r] of results) {
      if (target === sink) {
        // Shown in Signet's column: the bound is the machine's, not a registry's.
        record(
          rows.bound,
          servers[0]!,
          medianOf(r, (t) => t.monolithic.mibPerSecond),
        );
        continue;
      }
      const monolithic = medianOf(r, (t) => t.monolithic.mibPerSecond);
      const streamed = medianOf(r, (t) => t.streamed.mibPerSecond);
      record(rows.monolithic, target, monolithic);
      record(
        rows.monolithicCpu,
        target,
        medianOf(r, (t) => t.monolithic.cpuMsPerMib),
      );
      record(rows.streamed, target, streamed);
      record(
        rows.streamedCpu,
        target,
        medianOf(r, (t) => t.streamed.cpuMsPerMib),
      );
      record(rows.monolithicOfBound, target, monolithic);
      record(rows.streamedOfBound, target, streamed);
    }
  } finally {
    await sink.stop();
  }
}

/**
 * Each round starts a fresh server of each kind (empty storage, a new database), pushes one blob
 * as docker does (POST, one streamed PATCH, PUT) as soon as it answers `GET /v2/`, and stops it:
 * what the first use after a start costs (code loaded and compiled, statements prepared, files
 * and directories created).
 */
async function runFirst(resources: Resources, servers: ServerHandle[], rows: PushRows, o: PushOptions, record: Record): Promise<void> {
  const layer = perRound(o.firstMib);
  const results = await alternate(servers, o.firstRounds, 'first push on a fresh server', async (server, round) => {
    const fresh = server === servers[0] ? await startSignet(resources) : await startGoRegistry(resources);
    try {
      const l = layer(round);
      const t = await timed(fresh, l.mib, (c) => c.pushStreamedBlob('bench/first', layerStream(l), l.digest));
      show(server, 'first push on a fresh server', round, t);
      return t;
    } finally {
      await fresh.stop();
    }
  });
  for (const [server, r] of results) {
    record(
      rows.first,
      server,
      medianOf(r, (t) => t.mibPerSecond),
    );
    record(
      rows.firstCpu,
      server,
      medianOf(r, (t) => t.cpuMsPerMib),
    );
  }
}

export async function runPushRows(
  resources: Resources,
  servers: ServerHandle[],
  rows: PushRows,
  o: PushOptions,
  record: Record,
): Promise<void> {
  await runChunked(servers, rows, o, record);
  await runBig(resources, servers, rows, o, record);
  await runFirst(resources, servers, rows, o, record);
}
