// Bounds the garbage V8 lets pile up in a JavaScript heap's old generation.
//
// The start flags give V8 a first old-generation limit of 64 MB (`--initial-old-space-size=64`,
// README "Memory and garbage collection") because V8 counts the fresh buffers an upload's socket
// reads arrive in against that limit: at 16 MB a 1 GiB push ran 9-13 full collections and cost
// 0.2 ms/MiB more CPU (1.63-1.80 against 1.42-1.63 ms/MiB), 64 MB lets the young-generation
// collections of storage/scavenge.ts free those buffers instead. But the same limit lets objects
// that outlive two young collections and then die pile up to 64 MB before the first full
// collection, in the server's heap and in the embedded database's worker alike: 16 concurrent small
// pushes, each waiting on its fsync, promote most of their request's objects, and 6,000 of them
// grew the two heaps' pages from 33 to 76 MB (the registry from 154 to 209 MB resident), almost all
// of it garbage: with full collections every 3 s it stayed at 44 MB.
//
// So each heap checks its own old generation every second, and once it has grown by GROWTH_BYTES
// since the last look after a collection, asks for a full one, which only JavaScript objects
// trigger, not upload buffers. `execution: 'async'` runs it in a task of its own rather than
// inside the check, but as one pause, not in increments (`--trace-gc`: 10-14 ms each, a few per
// 6,000 small pushes).
// Under a steady read load little is promoted (`--no-allocation-site-pretenuring`), so this
// rarely fires there.
// 4 MB rather than 8: three rounds of 2,000 small pushes with 16 at once peaked at 160-165 MB
// resident against 164-177 (three alternating runs each; the database worker's old generation went
// from 9 to 18 MB between its collections at 8), at the same pushes per second and 3.4-3.5 against
// 3.4 ms of CPU per push.
//
// It takes V8's gc extension (`--expose-gc`, one of the start flags); without it nothing is done.
import { getHeapSpaceStatistics } from 'node:v8';

const CHECK_EVERY_MS = 1000;
const GROWTH_BYTES = 4 * 1024 * 1024;

/** The bytes of live and dead objects in the old generation (old, code and large-object spaces). */
function oldGenerationBytes(): number {
  let used = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name !== 'new_space' && space.space_name !== 'new_large_object_space') used += space.space_used_size;
  }
  return used;
}

export interface HeapBound {
  /** One check, as the timer runs it: true when it started a full collection. */
  check(): boolean;
  stop(): void;
}

/**
 * Starts the once-a-second check in the calling thread's heap. `collect` is V8's gc extension
 * (the default); `measure` what the old generation holds (tests give their own).
 */
export function boundOldGeneration(
  options: { collect?: (options: { type: 'major'; execution: 'async' }) => unknown; measure?: () => number; growthBytes?: number } = {},
): HeapBound {
  const collect = options.collect ?? globalThis.gc;
  const measure = options.measure ?? oldGenerationBytes;
  const growth = options.growthBytes ?? GROWTH_BYTES;
  // undefined: take the next look as the base (a collection started since the last look).
  let base: number | undefined = measure();
  const check = (): boolean => {
    if (!collect) return false;
    const used = measure();
    if (base === undefined || used < base) {
      base = used;
      return false;
    }
    if (used - base < growth) return false;
    base = undefined;
    // async: run in a task of its own; the Promise it returns is settled when it is done.
    void Promise.resolve(collect({ type: 'major', execution: 'async' })).catch(() => undefined);
    return true;
  };
  const timer = collect ? setInterval(check, CHECK_EVERY_MS).unref() : undefined;
  return { check, stop: () => clearInterval(timer) };
}
