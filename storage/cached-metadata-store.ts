// An in-memory cache in front of the metadata store for the hot read paths of a pull: tag → digest,
// manifest by digest, blob link by digest, tag lists. The database stays the truth; every write
// through this process drops what it could have changed, and entries expire after `ttlMs`, which
// bounds how stale a replica can be about writes made by another one. With `soleWriter` (the
// embedded PGlite, which only this process opens) there is no other one, so entries stay until a
// write drops them or the byte budget evicts them. The budget (`maxBytes`) counts what each entry
// holds (manifest bytes, names), so memory stays bounded however many manifests the registry
// holds; a bound by entry count let 50,000 entries of up to 4 MiB manifests grow without limit. Misses are not cached, so a
// blob or manifest pushed through another replica is visible at once. Invalidation happens after
// the write, and keys carry the generation read before a load, so a load racing a write can only
// fill an orphaned key. While the database does not answer, an entry past its TTL is served as it
// was (pulls of what was pulled lately go on during an outage); nothing can be written meanwhile,
// and a replica whose change notifications were cut drops every entry when they are back.
import { LRUCache } from 'lru-cache';
import type { ChangeBus } from './change-bus.js';
import { DependencyUnavailableError } from './errors.js';
import { inOrder, type ManifestRecord, type MetadataStore, type Page, type TagListJson, type TagRecord } from './metadata-store.js';

export interface MetadataCacheOptions {
  ttlMs: number;
  /** Bytes the entries may hold (approximately: their strings and manifest bytes). */
  maxBytes?: number;
  /** Every write goes through this process (embedded database): entries do not expire. */
  soleWriter?: boolean;
  /** Tag lists up to this many names are cached whole (default WHOLE_LIST_TAGS; tests set less). */
  wholeTagList?: number;
}

/** Without `maxBytes` (REGISTRY_CACHE_MAXSIZE's default too, in server/config.ts). */
const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/** What an entry costs beyond its own bytes: the key, the LRU's node, the object headers. */
const ENTRY_OVERHEAD = 160;

type Entry = { value: string | number | ManifestRecord | string[] | TagRecord[] | TagListJson };

export function createCachedMetadataStore(inner: MetadataStore, options: MetadataCacheOptions, bus?: ChangeBus): MetadataStore {
  const cache = new LRUCache<string, Entry>({
    maxSize: Math.max(options.maxBytes ?? DEFAULT_CACHE_BYTES, 1),
    sizeCalculation: (entry, key) => ENTRY_OVERHEAD + key.length + sizeOf(entry.value),
    ...(options.soleWriter ? {} : { ttl: Math.max(options.ttlMs, 1) }),
    // Expired entries stay (within `maxSize`) for serving during an outage; fresh reads never see them.
    noDeleteOnStaleGet: true,
  });
  // Bumping a repository's generation orphans all its entries at once (they age out of the LRU);
  // the global generation does so for every repository.
  const generations = new Map<string, number>();
  let everything = 0;
  // The catalog changes with any repository's first manifest or last removal: any write to any
  // repository orphans every cached catalog page.
  let catalog = 0;
  /** Keys of the repository's current generation. */
  const scope = (repository: string): ((kind: string, id: string) => string) => {
    const prefix = `${everything}\u0000${repository}\u0000${generations.get(repository) ?? 0}\u0000`;
    return (kind, id) => `${prefix}${kind}\u0000${id}`;
  };
  const keyOf = (repository: string, kind: string, id: string): string => scope(repository)(kind, id);
  bus?.subscribe((change) => {
    if (change === 'all') {
      everything += 1;
      cache.clear();
    } else if (change.repository !== undefined) {
      generations.set(change.repository, (generations.get(change.repository) ?? 0) + 1);
      catalog += 1;
    }
  });
  // Every write says what it changed: here, and through the bus on the other replicas.
  const invalidate = (repository: string): void => {
    if (bus) bus.publish({ repository });
    else {
      generations.set(repository, (generations.get(repository) ?? 0) + 1);
      catalog += 1;
    }
  };
  if (options.ttlMs <= 0) return withWriteNotices(inner, invalidate);
  const wholeTagList = options.wholeTagList ?? WHOLE_LIST_TAGS;

  // Whole tag lists being read: requests that miss together share one read (and so one parse of
  // its names). Each expiry of a 50,000-tag list (REGISTRY_CACHE_TTL on PostgreSQL) sent one
  // 20 ms statement, and one parse, per request waiting for it. A list, unlike a miss of a tag or
  // manifest, may be as old as the TTL anyway.
  const listsLoading = new Map<string, Promise<TagListJson | typeof TOO_MANY_TAGS | undefined>>();
  /** The repository's tags as one JSON text, or TOO_MANY_TAGS beyond `wholeTagList`. */
  const wholeTagListOf = (repository: string): Promise<TagListJson | typeof TOO_MANY_TAGS | undefined> => {
    const key = keyOf(repository, 'L', '');
    const hit = cache.get(key);
    if (hit) return Promise.resolve(hit.value as TagListJson | typeof TOO_MANY_TAGS);
    let loading = listsLoading.get(key);
    if (!loading) {
      loading = cached(key, async () => {
        const whole = await inner.tags.listJson(repository, wholeTagList);
        return whole === undefined ? undefined : whole.count > wholeTagList ? TOO_MANY_TAGS : whole;
      }).finally(() => listsLoading.delete(key));
      listsLoading.set(key, loading);
    }
    return loading;
  };
  // The names of a whole tag list, parsed once a page of it is asked for (a whole list is sent as
  // the text it is); they go with the list's entry (sizeOf counts them).
  const parsedNames = new WeakMap<TagListJson, string[]>();
  const namesOf = (whole: TagListJson): string[] => {
    let names = parsedNames.get(whole);
    if (!names) parsedNames.set(whole, (names = inOrder(JSON.parse(whole.json) as string[])));
    return names;
  };

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
    repositories: {
      exists: (name) => inner.repositories.exists(name),
      // Catalog pages, as tag lists: crawlers and mirrors poll GET /v2/_catalog, and each miss is a
      // scan of every repository for one with a manifest (bench/, "catalog"). No repository name
      // is empty, so these keys meet no repository's.
      async list(page) {
        const key = `${everything}\u0000\u0000${catalog}\u0000${page.last ?? ''}\u0000${page.limit}\u0000${page.project ?? ''}`;
        return (await cached(key, () => inner.repositories.list(page))) ?? [];
      },
    },
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
      async findByTag(repository, tag) {
        const key = scope(repository);
        const tagged = cache.get(key('t', tag));
        if (tagged) {
          const digest = tagged.value as string;
          return cached(key('m', digest), () => inner.manifests.find(repository, digest));
        }
        // A miss: the tag and its manifest in one statement, both cached under keys of the
        // generation read before it (as `cached` does).
        let manifest: ManifestRecord | undefined;
        try {
          manifest = await inner.manifests.findByTag(repository, tag);
        } catch (err) {
          const stale = err instanceof DependencyUnavailableError ? cache.get(key('t', tag), { allowStale: true }) : undefined;
          const staleManifest = stale && cache.get(key('m', stale.value as string), { allowStale: true });
          if (staleManifest) return staleManifest.value as ManifestRecord;
          throw err;
        }
        if (manifest) {
          cache.set(key('t', tag), { value: manifest.digest });
          cache.set(key('m', manifest.digest), { value: manifest });
        }
        return manifest;
      },
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
      async list(repository, page) {
        // A repository's whole tag list is read once (one statement: 24 ms for 50,000 tags) and
        // each page is cut from it, as clients walk `?n=&last=` page by page following the Link
        // header: 500 pages over 50,000 tags were 500 statements, 1.2 s on PGlite (bench/, "Reads
        // at scale"). Beyond `wholeTagList` names each page is read and cached on its own.
        const whole = await wholeTagListOf(repository);
        if (whole === undefined) return undefined;
        if (whole !== TOO_MANY_TAGS) return pageOf(namesOf(whole), page);
        return cached(keyOf(repository, 'l', `${page.last ?? ''}\u0000${page.limit}`), () => inner.tags.list(repository, page));
      },
      async listJson(repository, max) {
        // The same object while it is cached: the handler keeps the answer it rendered from it.
        const whole = await wholeTagListOf(repository);
        if (whole === undefined) return undefined;
        if (whole !== TOO_MANY_TAGS && whole.count <= max) return whole;
        return cached(keyOf(repository, 'J', String(max)), () => inner.tags.listJson(repository, max));
      },
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

/** Tag lists up to this long are cached whole (at most a few MB) and paged in memory. */
const WHOLE_LIST_TAGS = 100_000;
/** Cached instead of a list longer than WHOLE_LIST_TAGS. */
const TOO_MANY_TAGS = -1;

/**
 * The names after `page.last`, at most `page.limit`, from a list in the store's order, byte order
 * (COLLATE "C"). Tag names are ASCII, and an ASCII string compares with any other by UTF-16 code
 * units as by UTF-8 bytes, so JavaScript's `<=` agrees with the database for every `last`.
 */
function pageOf(names: string[], page: Page): string[] {
  let start = 0;
  if (page.last !== undefined) {
    let end = names.length;
    while (start < end) {
      const middle = (start + end) >>> 1;
      if (names[middle]! <= page.last) start = middle + 1;
      else end = middle;
    }
  }
  return names.slice(start, start + page.limit);
}

/** Approximate bytes an entry's value holds. */
function sizeOf(value: Entry['value']): number {
  if (typeof value === 'number') return 8;
  if (typeof value === 'string') return value.length;
  // The text, and the names parsed from it once a page is asked for.
  if ('json' in value) return 2 * value.json.length + 24 * value.count;
  if (Array.isArray(value)) {
    let total = 0;
    for (const item of value) total += typeof item === 'string' ? item.length + 16 : item.name.length + item.digest.length + 64;
    return total;
  }
  return (
    value.content.length +
    value.digest.length +
    value.mediaType.length +
    64 +
    (value.annotations ? JSON.stringify(value.annotations).length : 0)
  );
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
