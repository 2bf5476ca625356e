// Rows for what a hostile client can learn or hold (issue 15): whether response times tell which
// user names exist, and how much memory clients that request a blob and never read it hold.
// Signet only: they judge Signet against fixed targets, not against the Go registry.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { RegistryClient, sha256 } from './registry-client.js';
import { inTurn } from './rounds.js';
import { currentRss, sampleRss, startSignet, type Resources, type ServerHandle } from './servers.js';
import { median, type Row, type Table } from './table.js';

/** `htpasswd -B` writes cost 5 unless told otherwise (PROTOCOL-NOTES.md). */
const HTPASSWD_COST = 5;
const TIMING_ROUNDS = 300;
const TIMING_WARMUP = 30;
const STALLED_READERS = 200;
const STALLED_BLOB_BYTES = 32 * 1024 * 1024;

export interface HostileRows {
  timing: Row;
  stalled: Row;
}

export function addHostileRows(table: Table): HostileRows {
  return {
    timing: table.add('401 time, unknown user / known user with a wrong password (median)', 'x', { kind: 'between', min: 0.8, max: 1.25 }),
    stalled: table.add(`RSS added by ${STALLED_READERS} clients requesting a 32 MiB blob, never reading`, 'MB', {
      kind: 'below',
      max: 50e6,
    }),
  };
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Milliseconds of one `GET /v2/` with these credentials, which must be refused. */
async function refusedMs(client: RegistryClient, authorization: string): Promise<number> {
  const started = performance.now();
  const res = await client.request('GET', client.url('/v2/'), { headers: { Authorization: authorization } });
  const ms = performance.now() - started;
  if (res.status !== 401) throw new Error(`expected 401, got ${res.status}`);
  return ms;
}

/**
 * Row: a Signet whose htpasswd file holds users at `htpasswd -B`'s cost; sequential refused
 * logins over one keep-alive connection, a known user with a wrong password and an unknown user
 * taking turns; the ratio of their medians.
 */
async function measureTiming(server: ServerHandle): Promise<number> {
  const client = new RegistryClient(server.baseUrl, 1);
  try {
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < TIMING_WARMUP + TIMING_ROUNDS; i++) {
      // Taking turns, the order flipping, so a drift of the host's speed falls on both.
      const knownUser = (): Promise<number> => refusedMs(client, basic('alice', `wrong-${i}`));
      const unknownUser = (): Promise<number> => refusedMs(client, basic(`nobody-${i}`, `wrong-${i}`));
      const [k, u] = await inTurn(knownUser, unknownUser, i % 2 === 1);
      if (i < TIMING_WARMUP) continue;
      known.push(k);
      unknown.push(u);
    }
    console.log(`  Signet       401 median: known user ${median(known).toFixed(2)} ms, unknown user ${median(unknown).toFixed(2)} ms`);
    return median(unknown) / median(known);
  } finally {
    client.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A connection that sends a blob GET and never reads the answer. */
async function stalledReader(port: number, urlPath: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  socket.pause();
  socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: bench\r\n\r\n`);
  return socket;
}

/**
 * Row: a Signet with no per-client download bound (so every reader is served: the figure is what
 * each one costs, not what the bound refuses), a 32 MiB blob pulled once to warm up; then 200
 * connections request it and never read. Resident memory after they settled (5 s, sampled every
 * 100 ms, the peak) less before they came.
 */
async function measureStalledReaders(server: ServerHandle): Promise<number> {
  const client = new RegistryClient(server.baseUrl, 1);
  const blob = randomBytes(STALLED_BLOB_BYTES);
  const digest = sha256(blob);
  const sockets: net.Socket[] = [];
  try {
    await client.pushBlob('bench/stalled', blob, digest);
    await client.pullBlob('bench/stalled', digest);
    await sleep(1000);
    const before = currentRss(server.pid);
    const port = Number(new URL(server.baseUrl).port);
    const rss = sampleRss(server.pid);
    for (let i = 0; i < STALLED_READERS; i++) sockets.push(await stalledReader(port, `/v2/bench/stalled/blobs/${digest}`));
    await sleep(5000);
    const peak = rss.stop();
    console.log(
      `  Signet       ${STALLED_READERS} stalled readers: RSS ${(before / 1e6).toFixed(1)} MB before, peak ${(peak / 1e6).toFixed(1)} MB`,
    );
    return (peak - before) / 1e6;
  } finally {
    for (const socket of sockets) socket.destroy();
    client.close();
  }
}

export async function runHostileRows(
  resources: Resources,
  rows: HostileRows,
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const dir = await resources.tempDir('signet-bench-hostile-');
  const htpasswd = path.join(dir, 'htpasswd');
  const users = ['alice', 'bob', 'carol'].map(
    (user) => `${user}:${bcrypt.hashSync(`${user}-password`, HTPASSWD_COST).replace(/^\$2b\$/, '$2y$')}`,
  );
  await writeFile(htpasswd, `${users.join('\n')}\n`);
  const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
  // The row times bcrypt's refusals: the bound on guessing, which answers 429 without bcrypt
  // after 10 refusals of a name from one address, is off for it.
  const server = await startSignet(resources, {
    REGISTRY_AUTH: 'htpasswd',
    REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
    REGISTRY_AUTH_HTPASSWD_MAXFAILURES: '0',
  });
  try {
    record(rows.timing, server, await measureTiming(server).catch(asError));
  } finally {
    await server.stop();
  }
  const open = await startSignet(resources, { REGISTRY_DOWNLOADS_MAXCONCURRENT: '0' });
  try {
    record(rows.stalled, open, await measureStalledReaders(open).catch(asError));
  } finally {
    await open.stop();
  }
}
