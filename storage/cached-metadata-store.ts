// An in-memory cache in front of the metadata store for the hot read paths of a pull: tag → digest,
// manifest by digest, blob link by digest, tag lists. The database stays the truth; every write
// through this process drops what it could have changed, and entries expire after `ttlMs`, which
// bounds how stale a replica can be about writes made by another one. Misses are not cached, so a
// blob or manifest pushed through another replica is visible at once. Invalidation happens after
// the write, and keys carry the generation read before a load, so a load racing a write can only
// fill an orphaned key. While the database does not answer, an entry past its TTL is served as it
// was (pulls of what was pulled lately go on during an outage); nothing can be written meanwhile,
// and a replica whose change notifications were cut drops every entry when they are back.
import { LRUCache } from 'lru-cache';
import type { ChangeBus } from './change-bus.js';
import { DependencyUnavailableError } from './errors.js';
import type { ManifestRecord, MetadataStore, TagRecord } from './metadata-store.js';

export interface MetadataCacheOptions {
  ttlMs: number;
  maxEntries?: number;
}

type Entry = { value: string | number | ManifestRecord | string[] | TagRecord[] };

export function createCachedMetadataStore(inner: MetadataStore, options: MetadataCacheOptions, bus?: ChangeBus): MetadataStore {
  const cache = new LRUCache<string, Entry>({
    max: options.maxEntries ?? 50_000,
    ttl: Math.max(options.ttlMs, 1),
    // Expired entries stay (within `max`) for serving during an outage; fresh reads never see them.
    noDeleteOnStaleGet: true,
  });
  // Bumping a repository's generation orphans all its entries at once (they age out of the LRU);
  // the global generation does so for every repository.
  const generations = new Map<string, number>();
  let everything = 0;
  const keyOf = (repository: string, kind: string, id: string): string =>
    `${everything}\u0000${repository}\u0000${generations.get(repository) ?? 0}\u0000${kind}\u0000${id}`;
  bus?.subscribe((change) => {
    if (change === 'all') {
      everything += 1;
      cache.clear();
    } else if (change.repository !== undefined) {
      generations.set(change.repository, (generations.get(change.repository) ?? 0) + 1);
    }
  });
  // Every write says what it changed: here, and through the bus on the other replicas.
  const invalidate = (repository: string): void => {
    if (bus) bus.publish({ repository });
    else generations.set(repository, (generations.get(repository) ?? 0) + 1);
  };
  if (options.ttlMs <= 0) return withWriteNotices(inner, invalidate);

  async function cached<T extends Entry['value']>(key: string, load: () => Promise<T | undefined>): Promise<T | undefined> {
    const hit = cache.get(key);
    if (hit) return hit.value as T;
    let value: T | undefined;
    try {
      value = await load();
    } catch (err) {
      const stale = err instanceof DependencyUnavailableError ? cache.get(key, { allowStale: true }) : undefined;
      if (stale) return stale.value as T;
      throw err;
    }
    if (value !== undefined) cache.set(key, { value });
    return value;
  }

  return {
    repositories: inner.repositories,
    blobs: {
      find: (repository, digest) => cached(keyOf(repository, 'b', digest), () => inner.blobs.find(repository, digest)),
      findMany: (repository, digests) => inner.blobs.findMany(repository, digests),
      save: (repository, digest, size, options) => inner.blobs.save(repository, digest, size, options),
      async remove(repository, digest) {
        const removed = await inner.blobs.remove(repository, digest);
        invalidate(repository);
        return removed;
      },
    },
    manifests: {
      find: (repository, digest) => cached(keyOf(repository, 'm', digest), () => inner.manifests.find(repository, digest)),
      findMany: (repository, digests) => inner.manifests.findMany(repository, digests),
      async save(repository, manifest, references, tag, options) {
        await inner.manifests.save(repository, manifest, references, tag, options);
        invalidate(repository);
      },
      async remove(repository, digest) {
        const removed = await inner.manifests.remove(repository, digest);
        invalidate(repository);
        return removed;
      },
      referrers: (repository, subject) => inner.manifests.referrers(repository, subject),
      parents: (repository, digest) => inner.manifests.parents(repository, digest),
    },
    tags: {
      find: (repository, tag) => cached(keyOf(repository, 't', tag), () => inner.tags.find(repository, tag)),
      list: (repository, page) =>
        cached(keyOf(repository, 'l', `${page.last ?? ''}\u0000${page.limit}`), () => inner.tags.list(repository, page)),
      listDetailed: (repository, page) =>
        cached(keyOf(repository, 'd', `${page.last ?? ''}\u0000${page.limit}`), () => inner.tags.listDetailed(repository, page)),
      async remove(repository, tag) {
        const removed = await inner.tags.remove(repository, tag);
        invalidate(repository);
        return removed;
      },
    },
    uploads: inner.uploads,
    close: () => inner.close(),
  };
}

/** No cache, but writes still tell the bus (gate decisions and other replicas depend on it). */
function withWriteNotices(inner: MetadataStore, changed: (repository: string) => void): MetadataStore {
  const after = async <T>(repository: string, result: Promise<T>): Promise<T> => {
    const value = await result;
    changed(repository);
    return value;
  };
  return {
    ...inner,
    blobs: { ...inner.blobs, remove: (r, d) => after(r, inner.blobs.remove(r, d)) },
    manifests: {
      ...inner.manifests,
      save: (r, m, refs, tag, options) => after(r, inner.manifests.save(r, m, refs, tag, options)),
      remove: (r, d) => after(r, inner.manifests.remove(r, d)),
    },
    tags: { ...inner.tags, remove: (r, t) => after(r, inner.tags.remove(r, t)) },
  };
}
