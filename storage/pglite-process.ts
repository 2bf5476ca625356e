// The embedded PostgreSQL (PGlite) runs in a child process of its own, started by createPgliteDb in
// storage/db.ts. PGlite executes every query synchronously on the thread that owns it and keeps
// 150-250 MB of WebAssembly memory and compiled code; in its own process neither stalls the
// registry's event loop nor sits in the registry's heap, where every garbage collection during a
// blob stream would walk it again.
//
// Started as `node pglite-process.js <mode> [data directory]`, over an IPC channel:
// - `init`: creates the database cluster (PostgreSQL's initdb) and exits. Initdb leaves several
//   hundred MB of WebAssembly memory behind that a process cannot give back, so it runs apart.
// - `serve`: opens the cluster and answers queries until told to close or until the parent goes.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PGlite } from '@electric-sql/pglite';
import { isErrno } from './errors.js';
import { LOCK_FILE, type PgliteReply, type PgliteRequest, type SerializedDbError } from './pglite-protocol.js';

const LOCK_WAIT_MS = 15_000;
const CLOSE_TIMEOUT_MS = 10_000;

async function open(dataDirectory: string | undefined): Promise<PGlite> {
  const { PGlite, types } = await import('@electric-sql/pglite');
  // int8 values we store (sizes, offsets, ids) fit a double: numbers, as the pg back end gives.
  const parsers = { [types.INT8]: (value: string) => Number(value) };
  // PostgreSQL's default 128 MB of shared buffers would be resident here; registry metadata needs
  // far less. 16 MB: about 130 MB less RSS (bench/).
  // WAL: PGlite has no checkpointer process, so a checkpoint happens only when max_wal_size of WAL
  // was written (the backend then runs it itself), and each one recycles segments ahead up to that
  // size. PostgreSQL's 1 GB default left 190-310 MB of WAL beside 150 MB of tables at 50,000
  // manifests (bench/, "Reads at scale"); 64 MB bounds it. fsync and full_page_writes as they are.
  const startParams = [
    ...PGlite.defaultStartParams,
    ...['-c', 'shared_buffers=16MB', '-c', 'max_wal_size=64MB', '-c', 'min_wal_size=32MB'],
  ];
  const db = new PGlite(dataDirectory, { parsers, startParams });
  await db.waitReady;
  return db;
}

function isOurDatabaseProcess(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (!isErrno(err, 'EPERM')) return false;
  }
  // A pid from before a restart may now belong to anything: only a live database process counts.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pglite-process');
  } catch {
    return process.platform !== 'linux';
  }
}

/** Takes the data directory's lock, waiting for a previous owner that is still shutting down. */
async function lock(dataDirectory: string): Promise<() => void> {
  const file = path.join(dataDirectory, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    const owner = Number.parseInt(readFileSync(file, 'utf8'), 10);
    if (!Number.isInteger(owner) || owner === process.pid || !isOurDatabaseProcess(owner)) {
      unlinkSync(file);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`database directory ${dataDirectory} is in use by another signet process (pid ${owner})`);
    }
    await sleep(100);
  }
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
    } catch {
      // already gone
    }
  };
}

function serializeError(err: unknown): SerializedDbError {
  const fields: Record<string, string> = {};
  if (err && typeof err === 'object') {
    for (const [key, value] of Object.entries(err)) if (typeof value === 'string') fields[key] = value;
  }
  return { message: err instanceof Error ? err.message : String(err), fields };
}

function send(reply: PgliteReply): void {
  process.send?.(reply);
}

async function serve(dataDirectory: string | undefined): Promise<void> {
  const unlock = dataDirectory ? await lock(dataDirectory) : () => undefined;
  process.on('exit', unlock);
  const db = await open(dataDirectory);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= Promise.race([db.close(), sleep(CLOSE_TIMEOUT_MS)]).then(() => process.exit(0)));

  // Queries run one after another, in the order they arrive: the parent relies on that order for
  // its transactions (BEGIN, the transaction's statements, COMMIT).
  let queue = Promise.resolve();
  process.on('message', (request: PgliteRequest) => {
    if ('close' in request) {
      queue = queue.then(close);
      return;
    }
    queue = queue.then(async () => {
      try {
        const result = await db.query<Record<string, unknown>>(request.sql, request.params);
        send({ id: request.id, rows: result.rows });
      } catch (err) {
        send({ id: request.id, error: serializeError(err) });
      }
    });
  });
  // The parent is gone (it exited or was killed): nobody will ask anything more, so shut the
  // database down cleanly and go.
  process.on('disconnect', () => void queue.then(close));
  send({ ready: true });
}

async function main(): Promise<void> {
  // A terminal's Ctrl-C reaches the whole process group: the registry drains its requests, which
  // still need the database, and then closes it. The parent decides when this process ends.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  const [mode, dataDirectory] = process.argv.slice(2);
  if (mode === 'init') {
    // Opening a directory without a cluster creates one; createPgliteDb asks only for such a one.
    if (!dataDirectory) throw new Error('init needs a data directory');
    await (await open(dataDirectory)).close();
    process.exit(0);
  }
  if (mode !== 'serve') throw new Error(`unknown mode ${String(mode)}`);
  await serve(dataDirectory || undefined);
}

main().catch((err: unknown) => {
  send({ fatal: err instanceof Error ? err.message : String(err) });
  process.exitCode = 1;
  process.disconnect?.();
});
