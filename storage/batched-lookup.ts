// Lookups that come while the database is busy go to it together, in one statement.
//
// On the embedded database every statement is a hand-off to its thread and a bind, execute and
// reply in its one WebAssembly engine, whatever it returns: a lookup of a manifest by tag cost
// ~300 us there, most of it per statement, not per row. At 50,000 manifests the manifest GETs
// that miss the cache queued on it one by one (bench/, "Reads at scale"). Here a lookup made while
// every connection is taken by earlier batches waits, and goes with the others that came meanwhile
// as one statement when a batch ends; with a connection free it goes at once (on the next tick,
// with what else that tick asked for). An idle registry answers as fast as before; a busy one
// runs fewer, larger statements (32 lookups per statement: 2,200 -> 11,000 lookups/s on PGlite).
import DataLoader from 'dataloader';

export interface BatchedLookupOptions {
  /** Batches that may run at once (read at each batch: the database's connections). */
  slots: () => number;
  /** Keys per statement at most. */
  maxBatch?: number;
}

/** `run` answers each key, in order; a failure fails every lookup of the batch. */
export function createBatchedLookup<K, V>(
  run: (keys: readonly K[]) => Promise<V[]>,
  options: BatchedLookupOptions,
): (key: K) => Promise<V> {
  let running = 0;
  const waiting: (() => void)[] = [];
  const loader = new DataLoader<K, V>(
    async (keys) => {
      try {
        return await run(keys);
      } finally {
        // The slot goes to the batch that waited longest, or is free again.
        const next = waiting.shift();
        if (next) process.nextTick(next);
        else running--;
      }
    },
    {
      cache: false,
      maxBatchSize: options.maxBatch ?? 64,
      batchScheduleFn(dispatch) {
        if (running < Math.max(1, options.slots())) {
          running++;
          process.nextTick(dispatch);
        } else waiting.push(dispatch);
      },
    },
  );
  return (key) => loader.load(key);
}
