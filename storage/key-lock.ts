// Mutual exclusion per key within one process: the embedded database's digest locks (locks.ts).

export type KeyLock = <T>(key: string, fn: () => Promise<T>) => Promise<T>;

/**
 * Mutual exclusion per key within this process: `fn` runs once every earlier holder of the key
 * finished (resolved or failed). A key no one holds or waits for takes no memory.
 */
export function createKeyLock(): KeyLock {
  const tails = new Map<string, Promise<unknown>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const before = tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = before ? before.then(() => mine) : mine;
    tails.set(key, tail);
    try {
      if (before) await before;
      return await fn();
    } finally {
      release();
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}
