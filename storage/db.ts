// One small query interface over both PostgreSQL back ends: a `pg` pool for a real server and
// PGlite (PostgreSQL compiled to WebAssembly, in a worker thread) as the zero-setup default. Both run the
// same SQL and the same migrations.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type pg from 'pg';
import { DependencyUnavailableError, type AvailabilityListener } from './errors.js';
import { classifyPgError } from './pg-errors.js';
import { lockDataDirectory } from './data-directory-lock.js';
import { createKeyLock, type KeyLock } from './key-lock.js';
import { entryPoint, fromSources } from './own-files.js';
import type { HeapSpace, PgliteReply, PgliteRequest } from './pglite-protocol.js';

export interface Queryable {
  query<R extends object = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  /**
   * Set on a transaction while which no other statement runs on the database at all (PGlite: one
   * process, one session, other statements held back): it already excludes everyone a lock would.
   */
  readonly exclusive?: boolean;
}

export interface Db extends Queryable {
  /** Runs `fn` in one transaction; a thrown error rolls it back. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` with no other statement on the database in between, each of its statements
   * committing on its own; only where the whole database is one session (PGlite). There it
   * excludes everyone a transaction would, without the BEGIN and COMMIT round trips.
   */
  readonly exclusively?: <T>(fn: (q: Queryable) => Promise<T>) => Promise<T>;
  /**
   * Runs `fn` holding `key`'s lock in this process, where this process alone opens the database
   * (PGlite): what an advisory lock does on a server, without a transaction that would hold back
   * every other statement meanwhile. Taken before any transaction, never inside one (locks.ts).
   */
  readonly withKeyLock?: KeyLock;
  close(): Promise<void>;
  /** Resolves when the database answers a statement (readiness checks). */
  ping(): Promise<void>;
  readonly kind: 'postgres' | 'pglite';
  /** Statements that can run at once: the pool's size; 1 for PGlite (one session). */
  readonly connections: number;
  /**
   * The spaces of the embedded database worker's JavaScript heap, for diagnostics and tests; only
   * where the database runs in a worker of this process (PGlite).
   */
  readonly heapSpaces?: () => Promise<HeapSpace[]>;
  /**
   * The same database for statements that may rightly run long (migrations, garbage collection):
   * no query timeout. Absent where there is none anyway (PGlite).
   */
  readonly maintenance?: Db;
}

/**
 * A database still opening, usable at once: statements wait until `opening` resolves (the embedded
 * database takes most of a second to load and start; requests that need no database, such as
 * `GET /v2/`, need not wait for it), and fail with its error if it fails. `ping` does not wait:
 * until then it fails as "starting", so /readyz keeps traffic away (server/handlers/health.ts).
 */
export function deferredDb(kind: Db['kind'], opening: Promise<Db>, maintenance = kind === 'postgres'): Db {
  let open: Db | undefined;
  let failed = false;
  opening.then(
    (db) => (open = db),
    () => (failed = true),
  );
  const db = (): Promise<Db> => (open ? Promise.resolve(open) : opening);
  return {
    kind,
    get connections() {
      return open?.connections ?? 1;
    },
    query: async (sql, params) => (open ?? (await opening)).query(sql, params),
    transaction: async (fn) => (await db()).transaction(fn),
    ...(kind === 'pglite'
      ? {
          withKeyLock: async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
            const ready = await db();
            if (!ready.withKeyLock) throw new Error('the embedded database has no key locks');
            return ready.withKeyLock(key, fn);
          },
          exclusively: async <T>(fn: (q: Queryable) => Promise<T>): Promise<T> => {
            const ready = await db();
            return ready.exclusively ? ready.exclusively(fn) : ready.transaction(fn);
          },
        }
      : {}),
    ...(maintenance
      ? {
          maintenance: deferredDb(
            kind,
            opening.then((ready) => ready.maintenance ?? ready),
            false,
          ),
        }
      : {}),
    async ping() {
      if (!open) throw new DependencyUnavailableError('database', failed ? 'failed to start' : 'starting');
      await open.ping();
    },
    async close() {
      await (await opening.catch(() => undefined))?.close();
    },
  };
}

let pgLoaded: Promise<typeof pg> | undefined;

/**
 * `pg`, loaded when a PostgreSQL server is configured: on the embedded default it would only hold
 * memory (bench/, RSS rows).
 */
export function loadPg(): Promise<typeof pg> {
  return (pgLoaded ??= Promise.resolve().then(() => {
    const driver = requirePg();
    // int8 and numeric come back as strings from pg; every int8 we store (sizes, offsets, ids)
    // fits in a double, so read them as numbers in both back ends. Set once, when it loads.
    driver.types.setTypeParser(driver.types.builtins.INT8, (value) => Number(value));
    // bytea (manifest bytes) into a buffer of its own. pg's parser decodes small values into
    // Node's shared 8 KiB pool, so each 600-byte manifest the metadata cache kept held a whole
    // slab: at 50,000 manifests the server idled at 404 MB against a 64 MiB cache budget
    // (bench/, "Reads at scale"). PGlite's rows arrive in buffers of their own already.
    const pooled = driver.types.getTypeParser(driver.types.builtins.BYTEA) as (value: string) => Buffer;
    driver.types.setTypeParser(driver.types.builtins.BYTEA, (value: string) => ownBytes(pooled(value)));
    return driver;
  }));
}

/**
 * pg asks when it loads whether it runs in a Cloudflare Worker (pg/lib/stream.js): without a
 * global `navigator`, which Node.js 20 does not have (21 and later do), it constructs a `Response`,
 * and that loads Node's bundled fetch implementation, 40-50 ms of CPU on the start-up path of a
 * registry on PostgreSQL (it listens once the database answers) spent on a question whose answer
 * is no (start-up profile on the bench machine). A navigator naming Node.js, there only during
 * the synchronous require, answers it as Node.js 21 does; nothing else runs meanwhile.
 */
function requirePg(): typeof pg {
  const global = globalThis as { navigator?: unknown };
  const shim = global.navigator === undefined;
  if (shim) global.navigator = { userAgent: `Node.js/${process.versions.node.split('.')[0]}` };
  try {
    return createRequire(import.meta.url)('pg') as typeof pg;
  } finally {
    if (shim) delete global.navigator;
  }
}

/** `bytes` in memory of its own: a view of a larger buffer would keep all of it alive. */
function ownBytes(bytes: Buffer): Buffer {
  if (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length) return bytes;
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  return own;
}

export interface PostgresDbOptions {
  /** Connections in the pool. */
  max?: number;
  /** How long a statement waits for a connection (from the pool, or a new one) before it fails. */
  connectTimeoutMs?: number;
  /** How long a statement waits for the server's answer before it fails. */
  queryTimeoutMs?: number;
  /** Told after each statement whether the server answered. */
  onAvailability?: AvailabilityListener;
  /** Prepare each statement text once per connection (default true; see statementName). */
  preparedStatements?: boolean;
}

/** Connections opened when the pool is made (as many as batched lookups use at once). */
const WARM_CONNECTIONS = 2;

export async function createPostgresDb(connectionString: string, options: PostgresDbOptions = {}): Promise<Db> {
  const { Pool } = await loadPg();
  const pool = new Pool({
    connectionString,
    max: options.max ?? 10,
    // A server that accepts connections and never answers (a stalled proxy, a hung host) fails the
    // request after this and the query timeout instead of holding it open; pg waits for ever.
    ...(options.connectTimeoutMs ? { connectionTimeoutMillis: options.connectTimeoutMs } : {}),
    keepAlive: true,
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  // Connections for the first requests, made while the registry checks its migrations: after a
  // restart the first request that needed a connection of its own waited ~30 ms for it (start-up
  // profile of a full tag list right after a restart, issue 22). A failure here is the one the
  // migrations' statement reports.
  for (let i = 0; i < Math.min(WARM_CONNECTIONS, options.max ?? 10); i++) {
    pool.connect().then(
      (client) => client.release(),
      () => undefined,
    );
  }
  const report = options.onAvailability ?? (() => undefined);
  /** Runs one call to the driver: its failure reads as the registry's, and availability is told. */
  async function call<T>(run: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    try {
      const result = await run();
      report('database', undefined, startedAt);
      return result;
    } catch (err) {
      const failure = classifyPgError(err);
      if (failure instanceof DependencyUnavailableError) report('database', failure, startedAt);
      throw failure;
    }
  }
  const prepared = options.preparedStatements ?? true;
  const bounded = postgresView(pool, call, options.queryTimeoutMs, prepared);
  return { ...bounded, maintenance: postgresView(pool, call, undefined, prepared), close: () => pool.end() };
}

const statementNames = new Map<string, string>();

/**
 * The name a statement text is prepared under on each connection: pg then parses it once per
 * connection and later only binds and executes it, and the server keeps its plan, as the embedded
 * database does (storage/pglite-statements.ts). The registry's statement texts are constants, so
 * the names are few; no statement returns a table whole (`SELECT *`), so a column added by a newer
 * replica's migration does not change what a prepared statement returns.
 */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    name = `signet_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

/** Statements on the pool, each failing after `queryTimeoutMs` without an answer (if set). */
function postgresView(
  pool: pg.Pool,
  call: <T>(run: () => Promise<T>) => Promise<T>,
  queryTimeoutMs: number | undefined,
  prepared: boolean,
): Db {
  // pg takes a per-statement timeout (not in its types); a client it fired on is dropped.
  const statement = (text: string, values?: unknown[]): pg.QueryConfig => {
    const config = prepared ? { name: statementName(text), text, values } : { text, values };
    return (queryTimeoutMs ? { ...config, query_timeout: queryTimeoutMs } : config) as pg.QueryConfig;
  };
  const query: Db['query'] = <R extends object>(sql: string, params?: unknown[]) =>
    call(async () => (await pool.query(statement(sql, params))).rows as R[]);
  return {
    kind: 'postgres',
    connections: pool.options.max,
    query,
    async ping() {
      await query('SELECT 1');
    },
    async transaction(fn) {
      const client = await call(() => pool.connect());
      // A connection that failed or timed out is dropped, not handed to the next statement.
      let broken: Error | undefined;
      // A checked-out client reports a lost connection as an 'error' event: unheard, it would end
      // the process. The statement waiting on it fails by itself.
      const onLost = (err: Error): void => void (broken ??= err);
      client.on('error', onLost);
      const run = async <R extends object>(sql: string, params?: unknown[]): Promise<R[]> => {
        try {
          return await call(async () => (await client.query(statement(sql, params))).rows as R[]);
        } catch (err) {
          if (err instanceof DependencyUnavailableError) broken = err;
          throw err;
        }
      };
      try {
        await run('BEGIN');
        const result = await fn({ query: run });
        await run('COMMIT');
        return result;
      } catch (err) {
        if (!broken) await run('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.off('error', onLost);
        client.release(broken);
      }
    },
    close: () => Promise.resolve(),
  };
}

export interface PgliteDbOptions {
  /** Called once if the database worker ends on its own; every query fails from then on. */
  onExit?: (err: Error) => void;
  /**
   * The worker's JavaScript heap bound, in MB: result rows are built there before they cross to
   * the registry, so a statement returning more than this ends the database (and, through onExit,
   * the registry) instead of growing the process without bound. Default 256: the registry's
   * statements return pages of at most a few thousand small rows.
   */
  maxHeapMb?: number;
}

const DEFAULT_WORKER_HEAP_MB = 256;

/**
 * PostgreSQL's WebAssembly compiled by V8's baseline compiler (Liftoff) alone, with no tier-up to
 * its optimising compiler: tiering up PostgreSQL's hot functions kept about 40 MB more resident
 * (optimised code and the compiler's memory, never handed back) on an idle registry, against 213
 * MB in all, and bought no speed a registry's statements notice: point reads and upserts ran at the
 * same rate, a 50,000-row sort as fast, only a sequential scan with a LIKE about 30% slower
 * (bench/, rows 28-29). The flag is process-wide and read when a module is compiled, so it is set
 * before the worker compiles PGlite. Nothing else the registry runs compiles WebAssembly (openpgp's
 * Argon2 decrypts private keys, which a registry never holds).
 */
function compileWasmWithLiftoffOnly(): void {
  setFlagsFromString('--liftoff-only');
}

/**
 * The worker's young generation: two semi-spaces of 1 MB instead of the 4 MB the start flags give
 * the server's heap (`--max-semi-space-size=4`, README "Memory and garbage collection"). The
 * server's young generation takes the buffers of blob streams; the worker's only statements, their
 * parameters and rows, a few KB each. At 4 MB its two semi-spaces grew to their 8 MB while PGlite
 * opened and stayed there, nearly empty, on an idle registry. V8 reads the flag when an isolate is
 * made, and it overrides a Worker's `resourceLimits`, so it is set, process-wide, just before the
 * worker is made (nothing else this process runs makes an isolate). Measured (a probe running the
 * bench's workloads, three alternating runs each): idle after the start and a small push
 * 149.7-150.2 MB against 154.9-155.4; peak through a 256 MiB push and pull, 6,000 small blob
 * pushes and manifest GETs 179-183 MB against 182-204; small blob pushes, manifest GETs and blob
 * HEADs at the same rates (3.5-4.0 against 3.2-3.8 ms of CPU per small push: the host's noise).
 */
const WORKER_SEMI_SPACE_MB = 1;

function sizeWorkerYoungGeneration(): void {
  setFlagsFromString(`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`);
}

/**
 * Embedded PostgreSQL: PGlite in a worker thread (storage/pglite-worker.ts), `undefined` for a
 * database in memory. The worker answers one statement at a time, in order; this side holds back
 * other statements while a transaction runs, so none lands inside someone else's transaction.
 */
export async function createPgliteDb(dataDirectory: string | undefined, options: PgliteDbOptions = {}): Promise<Db> {
  return (await startPgliteDb(dataDirectory, options)).ready;
}

/**
 * Claims the data directory (its lock: a second registry on it is refused now) and starts the
 * database, whose loading and start take most of a second: `ready` resolves once it answers.
 */
export async function startPgliteDb(dataDirectory: string | undefined, options: PgliteDbOptions = {}): Promise<{ ready: Promise<Db> }> {
  let unlock = (): void => undefined;
  if (dataDirectory) {
    await mkdir(dataDirectory, { recursive: true });
    unlock = await lockDataDirectory(dataDirectory);
  }
  const ready = (async () => {
    try {
      if (dataDirectory && !existsSync(path.join(dataDirectory, 'PG_VERSION'))) await runInit(dataDirectory);
      return await startWorker(dataDirectory, options, unlock);
    } catch (err) {
      unlock();
      throw err;
    }
  })();
  return { ready };
}

async function startWorker(dataDirectory: string | undefined, options: PgliteDbOptions, unlock: () => void): Promise<Db> {
  compileWasmWithLiftoffOnly();
  sizeWorkerYoungGeneration();
  const worker = new Worker(workerEntry(), {
    eval: fromSources,
    workerData: { dataDirectory },
    execArgv: loaderFlags(),
    resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb ?? DEFAULT_WORKER_HEAP_MB },
  });
  const pending = new Map<number, { resolve: (rows: Record<string, unknown>[]) => void; reject: (err: Error) => void }>();
  const heapLooks = new Map<number, { resolve: (spaces: HeapSpace[]) => void; reject: (err: Error) => void }>();
  let nextId = 0;
  let lost: Error | undefined;
  let closing = false;
  let opened = false;

  let started!: { resolve: () => void; reject: (err: Error) => void };
  const ready = new Promise<void>((resolve, reject) => (started = { resolve, reject }));
  worker.on('message', (reply: PgliteReply) => {
    if ('ready' in reply) started.resolve();
    else if ('fatal' in reply) started.reject(new Error(`embedded database: ${reply.fatal}`));
    else if ('closed' in reply) void worker.terminate();
    else if ('heapSpaces' in reply) {
      heapLooks.get(reply.id)?.resolve(reply.heapSpaces);
      heapLooks.delete(reply.id);
    } else {
      const waiter = pending.get(reply.id);
      pending.delete(reply.id);
      if ('error' in reply) waiter?.reject(classifyPgError(Object.assign(new Error(reply.error.message), reply.error.fields)) as Error);
      else waiter?.resolve(reply.rows);
    }
  });
  let failure: Error | undefined;
  worker.on('error', (err) => (failure ??= err));
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      unlock();
      const err = failure ? new Error(`embedded database failed: ${failure.message}`) : new Error('embedded database ended');
      lost = err;
      started.reject(err);
      for (const waiter of [...pending.values(), ...heapLooks.values()]) waiter.reject(err);
      pending.clear();
      heapLooks.clear();
      // Before it answered, an end is a failure to start, which `ready` reports (once, named).
      if (!closing && opened) options.onExit?.(err);
      resolve();
    }),
  );
  try {
    await ready;
    opened = true;
  } catch (err) {
    await worker.terminate();
    throw err;
  }

  function send<R>(sql: string, params?: unknown[]): Promise<R[]> {
    if (lost) return Promise.reject(lost);
    const id = nextId++;
    return new Promise<R[]>((resolve, reject) => {
      pending.set(id, { resolve: (rows) => resolve(rows.map(normalizeRow) as R[]), reject });
      const request: PgliteRequest = params === undefined ? { id, sql } : { id, sql, params };
      worker.postMessage(request);
    });
  }

  // Set while a transaction or exclusive section runs: statements from outside it wait.
  let heldUntil: Promise<void> | undefined;
  const own: Queryable = { exclusive: true, query: (sql, params) => send(sql, params) };
  async function hold<T>(fn: () => Promise<T>): Promise<T> {
    while (heldUntil) await heldUntil;
    let finish!: () => void;
    heldUntil = new Promise((resolve) => (finish = resolve));
    try {
      return await fn();
    } finally {
      heldUntil = undefined;
      finish();
    }
  }
  const query: Db['query'] = async (sql, params) => {
    while (heldUntil) await heldUntil;
    return send(sql, params);
  };
  return {
    kind: 'pglite',
    connections: 1,
    query,
    async ping() {
      await query('SELECT 1');
    },
    transaction: (fn) =>
      hold(async () => {
        try {
          // Each statement is a round trip to the database thread, and the transaction holds every
          // other statement back until it ends, so its statements are not kept waiting for BEGIN's
          // answer: the worker runs them in the order sent, BEGIN first.
          const begun = send('BEGIN');
          begun.catch(() => undefined);
          const result = await fn(own);
          await begun;
          await send('COMMIT');
          return result;
        } catch (err) {
          await send('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }),
    exclusively: (fn) => hold(() => fn(own)),
    withKeyLock: createKeyLock(),
    heapSpaces: () => {
      if (lost) return Promise.reject(lost);
      const id = nextId++;
      return new Promise<HeapSpace[]>((resolve, reject) => {
        heapLooks.set(id, { resolve, reject });
        worker.postMessage({ id, heapSpaces: true } satisfies PgliteRequest);
      });
    },
    async close() {
      if (closing) return;
      closing = true;
      if (!lost) worker.postMessage({ close: true } satisfies PgliteRequest);
      await exited;
    },
  };
}

/**
 * The worker's script. Node 20 does not hand a thread's module loader hooks to its workers, so
 * under tsx the worker registers tsx itself before it imports its TypeScript.
 */
function workerEntry(): URL | string {
  const entry = entryPoint('storage/pglite-worker');
  if (!fromSources) return entry;
  return `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`;
}

/** Loader flags only (tsx under tests and bench): not a profiler's or debugger's flags meant for the registry. */
function loaderFlags(): string[] {
  return process.execArgv.filter(
    (arg, i, all) => /^--(import|require|loader|experimental-loader)\b/.test(arg) || /^--(import|require|loader)$/.test(all[i - 1] ?? ''),
  );
}

/** Creates the cluster (initdb) in a process of its own, which then exits (storage/pglite-process.ts). */
async function runInit(dataDirectory: string): Promise<void> {
  const entry = fileURLToPath(entryPoint('storage/pglite-process'));
  const child = fork(entry, ['init', dataDirectory], { execArgv: loaderFlags(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`embedded database init exited with ${signal ?? `code ${code}`}`));
    });
  });
}

// PGlite returns bytea as Uint8Array; make it a Buffer as pg does.
function normalizeRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(row)) {
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
      row[key] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return row;
}
