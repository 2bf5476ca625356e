// The embedded PostgreSQL (PGlite) runs in a worker thread of the registry, started by
// createPgliteDb in storage/db.ts. PGlite executes every query synchronously on the thread that
// owns it: on a thread of its own it never stalls the registry's event loop, and its JavaScript
// heap is its own isolate's, which the registry's garbage collections during blob streams do not
// walk. A thread rather than a child process: one Node.js runtime instead of two (about 60 MB of
// resident memory less on an idle registry, bench/), and a statement and its rows cross by
// structured clone in memory instead of through a pipe.
import { parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapSpaceStatistics } from 'node:v8';
import { openPglite } from './pglite-engine.js';
import { createPreparedStatements } from './pglite-statements.js';
import { boundOldGeneration } from './heap-bound.js';
import type { PgliteReply, PgliteRequest, SerializedDbError } from './pglite-protocol.js';

const CLOSE_TIMEOUT_MS = 10_000;

function serializeError(err: unknown): SerializedDbError {
  const fields: Record<string, string> = {};
  if (err && typeof err === 'object') {
    for (const [key, value] of Object.entries(err)) if (typeof value === 'string') fields[key] = value;
  }
  return { message: err instanceof Error ? err.message : String(err), fields };
}

async function serve(port: NonNullable<typeof parentPort>, dataDirectory: string | undefined): Promise<void> {
  const send = (reply: PgliteReply): void => port.postMessage(reply);
  let db;
  try {
    db = await openPglite(dataDirectory);
  } catch (err) {
    send({ fatal: err instanceof Error ? err.message : String(err) });
    return;
  }
  const open = db;
  const statements = createPreparedStatements(open);
  // Queries run one after another, in the order they arrive: the registry relies on that order
  // for its transactions (BEGIN, the transaction's statements, COMMIT).
  let queue = Promise.resolve();
  port.on('message', (request: PgliteRequest) => {
    if ('close' in request) {
      queue = queue.then(async () => {
        await Promise.race([open.close(), sleep(CLOSE_TIMEOUT_MS)]);
        send({ closed: true });
        port.close();
      });
      return;
    }
    if ('heapSpaces' in request) {
      const heapSpaces = getHeapSpaceStatistics().map((s) => ({ name: s.space_name, size: s.space_size, used: s.space_used_size }));
      send({ id: request.id, heapSpaces });
      return;
    }
    queue = queue.then(async () => {
      try {
        send({ id: request.id, rows: await statements.query(request.sql, request.params) });
      } catch (err) {
        send({ id: request.id, error: serializeError(err) });
      }
    });
  });
  send({ ready: true });
  // What opening the database left behind (PGlite reads its WebAssembly and its data bundle into
  // buffers at start) stays resident in a worker that allocates too little to start a collection
  // soon. One full collection a second after start, queued like a statement: 8-9 MiB less
  // resident on an idle registry (158-159 -> 149-150 MiB after the start and a small push), ~9 ms
  // of the worker's time once. It takes the gc extension (--expose-gc, one of the start flags);
  // without it nothing is done.
  setTimeout(() => {
    queue = queue.then(() => globalThis.gc?.());
  }, 1000).unref();
  // And what statements leave behind, from then on (storage/heap-bound.ts).
  boundOldGeneration();
}

if (!parentPort) throw new Error('storage/pglite-worker runs as a worker thread of the registry');
await serve(parentPort, (workerData as { dataDirectory?: string }).dataDirectory);
