// Opening PGlite (PostgreSQL compiled to WebAssembly) the one way this registry runs it: used by
// the database worker (storage/pglite-worker.ts) and by the one-off initdb process
// (storage/pglite-process.ts).
import { closeSync, fsyncSync, openSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';

/** What the Emscripten file system's nodes for the data directory carry (PGlite's NODEFS). */
interface NodeFsStream {
  nfd: number;
}
interface EmscriptenFs {
  lookupPath(path: string): { node: { stream_ops: { fsync?: (stream: NodeFsStream) => number } } };
}

export async function openPglite(dataDirectory: string | undefined): Promise<PGlite> {
  const { PGlite, types } = await import('@electric-sql/pglite');
  const parsers = {
    // int8 values we store (sizes, offsets, ids) fit a double: numbers, as the pg back end gives.
    [types.INT8]: (value: string) => Number(value),
    // bytea arrives as hex text, `\x` first (bytea_output 'hex', the default; PGlite's own parser
    // reads only that too). That parser makes each byte with a substring, a parseInt and a
    // callback: ~100 us of a 32-row lookup of manifests (~450 bytes each) went there; Node's hex
    // decoder does it natively (lookups 8.3-9.2k -> 11-11.8k/s).
    [types.BYTEA]: hexBytes,
  };
  const startParams = [
    // PGlite starts PostgreSQL with -F (fsync off) by default: a power loss could then take
    // commits the registry acknowledged, or leave the data files and the WAL out of step.
    ...PGlite.defaultStartParams.filter((param) => param !== '-F'),
    // PostgreSQL's default 128 MB of shared buffers would be resident here; registry metadata
    // needs far less: the operating system's page cache holds the rest of the files, a read
    // system call away. 16 MB: about 130 MB less RSS (bench/); 8 MB: another 11 MB less idle
    // (155 vs 167 MB after the start and a small push).
    '-c',
    'shared_buffers=8MB',
    // One backend ever runs here (PGlite is single-user PostgreSQL), but shared memory is sized
    // for max_connections' 100: per-backend slots, and the lock table at max_locks_per_transaction
    // per connection. Five connections, 128 locks each (640 slots: a migration or a GC sweep
    // locks a few dozen relations): about 9 MB less resident (bench/, rows 28-32).
    ...['-c', 'max_connections=5', '-c', 'max_locks_per_transaction=128'],
    // Shared memory is also sized for processes PGlite never starts: WAL senders (10 by default),
    // replication slots (10) and autovacuum workers (3). Each counts as a backend, with its share of
    // the lock table above: 14 -> 12 MiB of shared memory (pg_shmem_allocations), 2-2.5 MB less
    // resident on an idle registry (147.6-148.0 against 150.2 MB after the start and a small push).
    ...['-c', 'max_wal_senders=0', '-c', 'max_replication_slots=0', '-c', 'autovacuum_max_workers=1'],
    // fsync(), not fdatasync(): in PGlite's Emscripten runtime fdatasync does nothing, while
    // fsync reaches the file system's fsync operation, which durable() below makes real.
    '-c',
    'wal_sync_method=fsync',
    // WAL: PGlite has no checkpointer process, so a checkpoint happens only when max_wal_size of
    // WAL was written (the backend then runs it itself), and each one recycles segments ahead up
    // to that size. PostgreSQL's 1 GB default left 190-310 MB of WAL beside 150 MB of tables at
    // 50,000 manifests (bench/, "Reads at scale"); 64 MB bounds it. full_page_writes stays on.
    ...['-c', 'max_wal_size=64MB', '-c', 'min_wal_size=32MB'],
  ];
  // One options object: PGlite reads its second argument only when the first is a directory's
  // name, so `new PGlite(undefined, options)` (a database in memory, as tests open) dropped the
  // parsers and settings above and ran PostgreSQL's defaults (128 MB of shared buffers).
  const db = new PGlite({ ...(dataDirectory ? { dataDir: dataDirectory } : {}), parsers, startParams });
  await db.waitReady;
  if (dataDirectory) {
    durable(db);
    // Whatever start-up wrote (crash recovery included) before the fsyncs were real, now on disk.
    await db.query('CHECKPOINT');
  }
  return db;
}

/**
 * PGlite's NODEFS (the data directory on the host's file system) has no fsync operation, so
 * PostgreSQL's fsyncs of the WAL at each commit and of data files at checkpoints did nothing:
 * give it one that fsyncs the host file. A failure throws, ending the database as PostgreSQL's
 * own PANIC on a failed fsync would.
 */
function durable(db: PGlite): void {
  const fs = (db as unknown as { Module: { FS: EmscriptenFs } }).Module.FS;
  const pgdata = fs.lookupPath('/pglite/data/PG_VERSION').node.stream_ops;
  pgdata.fsync = (stream) => {
    fsyncSync(stream.nfd);
    return 0;
  };
}

/** fsyncs every file and directory under `root` (after initdb, which ran without fsyncs). */
export function fsyncTree(root: string): void {
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) fsyncTree(full);
    else if (entry.isFile()) fsyncPath(full);
  }
  fsyncPath(root);
}

function fsyncPath(file: string): void {
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * `\x`-prefixed hex text as bytes of their own: not a view of Buffer's shared pool, which a
 * cache would keep alive and a postMessage would copy whole.
 */
function hexBytes(value: string): Uint8Array {
  const bytes = Buffer.allocUnsafeSlow((value.length - 2) >>> 1);
  bytes.write(value.slice(2), 'hex');
  return bytes;
}
