// A PostgreSQL server of the test's own, to stop and start under a running registry: Debian's
// initdb and pg_ctl (/usr/lib/postgresql/<version>/bin) into a temporary folder, on a port of its
// own, listening on 127.0.0.1 only, with trust authentication. PostgreSQL refuses to run as root, so
// as root (as CI runs) it runs as the `postgres` user.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const DEBIAN_ROOT = '/usr/lib/postgresql';

/** The newest Debian PostgreSQL bin folder holding initdb and pg_ctl, if any. */
export function postgresBinDir(): string | undefined {
  if (!existsSync(DEBIAN_ROOT)) return undefined;
  const versions = readdirSync(DEBIAN_ROOT)
    .filter((v) => existsSync(path.join(DEBIAN_ROOT, v, 'bin', 'initdb')) && existsSync(path.join(DEBIAN_ROOT, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : path.join(DEBIAN_ROOT, versions[0], 'bin');
}

/** The uid and gid to run PostgreSQL as: ours, or the `postgres` user's when we are root. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    return { uid, gid };
  } catch {
    return undefined;
  }
}

/** What keeps this machine from running an own PostgreSQL, for testWithCommands' `check`. */
export function ownPostgresMissing(): string | undefined {
  if (!postgresBinDir()) return `no initdb and pg_ctl under ${DEBIAN_ROOT}/*/bin (Debian's postgresql package)`;
  if (process.getuid?.() === 0 && !runAs()) return 'running as root without a postgres user to run PostgreSQL as';
  return undefined;
}

export interface OwnPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  port: number;
  /** Starts the server (again) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops it: `fast` ends every session with an error (as `systemctl stop` does), `immediate` kills them. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops it and removes its files. */
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function run(command: string, args: string[], user: { uid: number; gid: number } | undefined, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...(user ?? {}), cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(command)} ${args[0]} exited with ${code}: ${stderr}`)),
    );
  });
}

export async function startOwnPostgres(): Promise<OwnPostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error(ownPostgresMissing());
  const user = runAs();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-own-pg-'));
  if (user) await chown(dir, user.uid, user.gid);
  const data = path.join(dir, 'data');
  const port = await freePort();
  const pgCtl = path.join(bin, 'pg_ctl');
  // fsync off: nothing here survives the machine, and a stop (fast or immediate) loses nothing
  // the server acknowledged, since its WAL is in the page cache either way.
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`;
  await run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'], user, dir);
  let running = false;
  const instance: OwnPostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await run(pgCtl, ['start', '-D', data, '-w', '-t', '60', '-l', path.join(dir, 'server.log'), '-o', serverOptions], user, dir);
      running = true;
    },
    async stop(mode = 'fast') {
      await run(pgCtl, ['stop', '-D', data, '-w', '-t', '60', '-m', mode], user, dir);
      running = false;
    },
    async close() {
      if (running) await instance.stop('immediate').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  // pg_ctl starts a daemon: should the test process end without closing it (a timeout), stop it
  // anyway rather than leave a server behind.
  process.once('exit', () => {
    if (running) spawnSync(pgCtl, ['stop', '-D', data, '-m', 'immediate'], { ...(user ?? {}), cwd: dir, stdio: 'ignore' });
  });
  try {
    await instance.start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return instance;
}
