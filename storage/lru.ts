// LRU caches bounded by their number of entries, without lru-cache's preallocation: given `max`,
// lru-cache allocates its arrays for that many entries at construction. The registry's caches of
// 4,096 to 100,000 entries took 22 ms of every start (issue 22: `/v2/` within 0.5 s of a restart)
// and some 4 MB before holding anything. Bounded by `maxSize` with every entry counting one, the
// same bound holds and the arrays grow with what is cached.
import { LRUCache } from 'lru-cache';

// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- lru-cache's own bound on keys and values
export function createLru<K extends {}, V extends {}>(max: number, options: { ttlMs?: number } = {}): LRUCache<K, V> {
  return new LRUCache<K, V>({
    maxSize: max,
    sizeCalculation: () => 1,
    ...(options.ttlMs === undefined ? {} : { ttl: options.ttlMs }),
  });
}
