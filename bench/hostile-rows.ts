// Rows for what a hostile client can learn or hold (issue 15): whether response times tell which
// user names exist, and how much memory clients that request a blob and never read it hold.
// Signet only: they judge Signet against fixed targets, not against the Go registry.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { RegistryClient } from './registry-client.js';
import { startSignet, type Resources, type ServerHandle } from './servers.js';
import { median, type Row, type Table } from './table.js';

/** `htpasswd -B` writes cost 5 unless told otherwise (PROTOCOL-NOTES.md). */
const HTPASSWD_COST = 5;
const TIMING_ROUNDS = 300;
const TIMING_WARMUP = 30;

export interface HostileRows {
  timing: Row;
}

export function addHostileRows(table: Table): HostileRows {
  return {
    timing: table.add('401 time, unknown user / known user with a wrong password (median)', 'x', { kind: 'between', min: 0.8, max: 1.25 }),
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
      let k: number;
      let u: number;
      if (i % 2 === 0) {
        k = await knownUser();
        u = await unknownUser();
      } else {
        u = await unknownUser();
        k = await knownUser();
      }
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

export async function runHostileRows(
  resources: Resources,
  rows: HostileRows,
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const dir = await resources.tempDir('signet-bench-hostile-');
  const htpasswd = path.join(dir, 'htpasswd');
  const users = ['alice', 'bob', 'carol'].map((user) => `${user}:${bcrypt.hashSync(`${user}-password`, HTPASSWD_COST).replace(/^\$2b\$/, '$2y$')}`);
  await writeFile(htpasswd, `${users.join('\n')}\n`);
  const server = await startSignet(resources, { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd });
  try {
    record(rows.timing, server, await measureTiming(server).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))));
  } finally {
    await server.stop();
  }
}
