// An in-memory cache in front of the metadata store for the hot read paths of a pull: tag → digest,
// manifest by digest, blob link by digest, tag lists. The database stays the truth; every write
// through this process drops what it could have changed, and entries expire after `ttlMs`, which
// bounds how stale a replica can be about writes made by another one (unless the change bus
// confirms it heard them all: `fresh` below). With `soleWriter` (the
// embedded PGlite, which only this process opens) there is no other one, so entries stay until a
// write drops them or the byte budget evicts them. The budget (`maxBytes`) counts what each entry
// costs in memory (sizeOf), so memory stays bounded however many manifests the registry holds; a
// bound by entry count let 50,000 entries of up to 4 MiB manifests grow without limit. Misses are not cached, so a
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
  /** Repositories whose changes are counted before every entry is dropped (default MAX_GENERATIONS; tests set less). */
  maxGenerations?: number;
}

/**
 * The longest an entry lives while the change bus keeps confirming what it heard: a bound on
 * what a notice path nobody thought of could cost, not a staleness anyone relies on.
 */
const CONFIRMED_LIFETIME_MS = 10 * 60 * 1000;
/** Without `maxBytes` (REGISTRY_CACHE_MAXSIZE's default too, in server/config.ts). */
const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
/**
 * The share of the budget for listing pages keyed by a client's cursor (catalog pages, tag list
 * pages past a whole list, the console's detailed pages). Anyone may send any `last=`, and each
 * new cursor was a new entry of up to a page of names in the one LRU (n=1000 names of ~40 bytes:
 * ~80 KB by sizeOf), so under a thousand anonymous catalog requests could flush the 64 MiB
 * default, manifests and tags included, and every pull went to the database again. In an LRU of
 * their own, such pages can only push out other pages.
 */
const PAGE_SHARE = 1 / 8;
/**
 * What an entry costs beyond its key and value: its slots in the LRU's arrays (key, value, size,
 * links, and with a ttl its start and ttl), with the room those arrays keep for growth, and its
 * entry in the LRU's map.
 */
const ENTRY_OVERHEAD = 192;
/** A string's header (map, hash, length, 16 bytes), V8's rounding to 8 bytes, and a margin. */
const STRING_BYTES = 32;
/** An array element or an object's field. */
const SLOT_BYTES = 8;
/** A small object or array: its map, properties and elements pointers, and a few fields in place. */
const OBJECT_BYTES = 64;
/** A named property in an object used as a dictionary (annotations): hash table entry. */
const PROPERTY_BYTES = 24;
/** A Date object (its time and the calendar fields V8 caches beside it): 112 bytes measured. */
const DATE_BYTES = 112;
/**
 * A Buffer beyond its bytes: the Uint8Array and ArrayBuffer objects in the heap, and the backing
 * store's record and allocation header outside it (manifest bytes are in buffers of their own).
 */
const BUFFER_BYTES = 320;

type Value = string | number | ManifestRecord | string[] | TagRecord[] | TagListJson | WholeList;
/** A repository's whole tag list, and its names once a page was cut from it. */
interface WholeList {
  whole: TagListJson;
  names?: string[];
}

export function createCachedMetadataStore(inner: MetadataStore, options: MetadataCacheOptions, bus?: ChangeBus): MetadataStore {
  const ttlMs = Math.max(options.ttlMs, 1);
  // Entries that expire (another process may write) may live longer than the TTL while the bus
  // confirms what it has heard (see `fresh`), up to this cap.
  const confirmable = bus !== undefined && !options.soleWriter;
  const lifetime = confirmable ? Math.max(ttlMs, CONFIRMED_LIFETIME_MS) : ttlMs;
  const budget = Math.max(options.maxBytes ?? DEFAULT_CACHE_BYTES, 2);
  const lru = (maxSize: number): LRUCache<string, Value> =>
    new LRUCache<string, Value>({
      maxSize: Math.max(Math.floor(maxSize), 1),
      sizeCalculation: (value, key) => ENTRY_OVERHEAD + stringBytes(key) + sizeOf(value),
      ...(options.soleWriter ? {} : { ttl: lifetime }),
      // Expired entries stay (within `maxSize`) for serving during an outage; fresh reads never see them.
      noDeleteOnStaleGet: true,
    });
  const cache = lru(budget * (1 - PAGE_SHARE));
  const pages = lru(budget * PAGE_SHARE);
  /**
   * A cached value that may be served: one read within the TTL, or any while the bus has confirmed,
   * within the TTL, that it heard every change committed up to then (storage/change-bus.ts): a
   * change to the entry's repository would have orphaned it. Either way what is served is at most
   * the TTL behind the database, as REGISTRY_CACHE_TTL promises; with the confirmation, entries
   * read long ago are still good, so a replica on PostgreSQL no longer asks again every TTL for
   * all it serves. Measured (issue 22): GETs of 2,000 tags for 10 s at a 1 s TTL took 6,468-7,189
   * database transactions before, 970-1,259 with it (the replicas' pings included).
   */
  const fresh = (key: string, from = cache): Value | undefined => {
    const hit = from.get(key);
    if (hit === undefined || !confirmable) return hit;
    const confirmedAt = bus.confirmedAt();
    if (confirmedAt !== undefined && performance.now() - confirmedAt <= ttlMs) return hit;
    return lifetime - from.getRemainingTTL(key) <= ttlMs ? hit : undefined;
  };
  // Bumping a repository's generation orphans all its entries at once (they age out of the LRU);
  // the global generation does so for every repository.
  const generations = new Map<string, number>();
  let everything = 0;
  // The catalog changes with any repository's first manifest or last removal: any write to any
  // repository orphans every cached catalog page.
  let catalog = 0;
  /** Keys of the repository's current generation. */
  const scope = (repository: string): ((kind: string, id: string) => string) => {
    const generation = generations.get(repository) ?? 0;
    return (kind, id) => flatKey(everything, repository, generation, kind, id);
  };
  const keyOf = (repository: string, kind: string, id: string): string => scope(repository)(kind, id);
  const dropAll = (): void => {
    everything += 1;
    generations.clear();
    cache.clear();
    pages.clear();
  };
  // One number per repository changed since the start, outside the byte budget: past
  // `maxGenerations` of them every entry goes at once (as when the bus reconnects) and the
  // numbers start again, so they cannot grow with the repositories a long-running server sees.
  const maxGenerations = options.maxGenerations ?? MAX_GENERATIONS;
  const changed = (repository: string): void => {
    if (!generations.has(repository) && generations.size >= maxGenerations) dropAll();
    generations.set(repository, (generations.get(repository) ?? 0) + 1);
    catalog += 1;
  };
  bus?.subscribe((change) => {
    if (change === 'all') dropAll();
    else if (change.repository !== undefined) changed(change.repository);
  });
  // Every write says what it changed: here, and through the bus on the other replicas.
  const invalidate = (repository: string): void => {
    if (bus) bus.publish({ repository });
    else changed(repository);
  };
  if (options.ttlMs <= 0) return withWriteNotices(inner, invalidate);
  const wholeTagList = options.wholeTagList ?? WHOLE_LIST_TAGS;

  // Whole tag lists being read: requests that miss together share one read (and so one parse of
  // its names). Each expiry of a 50,000-tag list (REGISTRY_CACHE_TTL on PostgreSQL) sent one
  // 20 ms statement, and one parse, per request waiting for it. A list, unlike a miss of a tag or
  // manifest, may be as old as the TTL anyway.
  const listsLoading = new Map<string, Promise<WholeList | typeof TOO_MANY_TAGS | undefined>>();
  /** The repository's tags as one JSON text, or TOO_MANY_TAGS beyond `wholeTagList`. */
  const wholeTagListOf = (repository: string): Promise<WholeList | typeof TOO_MANY_TAGS | undefined> => {
    const key = keyOf(repository, 'L', '');
    const hit = fresh(key);
    if (hit !== undefined) return Promise.resolve(hit as WholeList | typeof TOO_MANY_TAGS);
    let loading = listsLoading.get(key);
    if (!loading) {
      loading = cached(key, async () => {
        const whole = await inner.tags.listJson(repository, wholeTagList);
        return whole === undefined ? undefined : whole.count > wholeTagList ? TOO_MANY_TAGS : { whole };
      }).finally(() => listsLoading.delete(key));
      listsLoading.set(key, loading);
    }
    return loading;
  };
  // The names of a whole tag list, parsed once a page of it is asked for (a whole list is sent as
  // the text it is); they go in the list's entry (sizeOf counted them when it was cached). Not in
  // a WeakMap beside the cache: its table kept the size it had grown to between collections, ~4
  // MiB past the budget after 500,000 lists had passed through it (test/storage/cache-memory.test.ts).
  const namesOf = (list: WholeList): string[] => (list.names ??= inOrder(JSON.parse(list.whole.json) as string[]));

  /** `into`: `pages` for an entry keyed by a client's cursor. */
  async function cached<T extends Value>(key: string, load: () => Promise<T | undefined>, into = cache): Promise<T | undefined> {
    const hit = fresh(key, into);
    if (hit !== undefined) return hit as T;
    let value: T | undefined;
    try {
      value = await load();
    } catch (err) {
      const stale = err instanceof DependencyUnavailableError ? into.get(key, { allowStale: true }) : undefined;
      if (stale !== undefined) return stale as T;
      throw err;
    }
    if (value !== undefined) into.set(key, value);
    return value;
  }

  return {
    repositories: {
      exists: (name) => inner.repositories.exists(name),
      // Catalog pages, as tag lists: crawlers and mirrors poll GET /v2/_catalog, and each miss is a
      // scan of every repository for one with a manifest (bench/, "catalog"). No repository name
      // is empty, so these keys meet no repository's.
      async list(page) {
        const key = flatKey(everything, '', catalog, page.last ?? '', page.limit, page.project ?? '');
        return (await cached(key, () => inner.repositories.list(page), pages)) ?? [];
      },
      async removeEmpty(project) {
        const removed = await inner.repositories.removeEmpty(project);
        for (const repository of removed) invalidate(repository);
        return removed;
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
        const tagged = fresh(key('t', tag));
        if (tagged !== undefined) {
          const digest = tagged as string;
          return cached(key('m', digest), () => inner.manifests.find(repository, digest));
        }
        // A miss: the tag and its manifest in one statement, both cached under keys of the
        // generation read before it (as `cached` does).
        let manifest: ManifestRecord | undefined;
        try {
          manifest = await inner.manifests.findByTag(repository, tag);
        } catch (err) {
          const stale = err instanceof DependencyUnavailableError ? cache.get(key('t', tag), { allowStale: true }) : undefined;
          const staleManifest = stale === undefined ? undefined : cache.get(key('m', stale as string), { allowStale: true });
          if (staleManifest !== undefined) return staleManifest as ManifestRecord;
          throw err;
        }
        if (manifest) {
          cache.set(key('t', tag), manifest.digest);
          cache.set(key('m', manifest.digest), manifest);
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
      referrers: (repository, subject, page) => inner.manifests.referrers(repository, subject, page),
      parents: (repository, digest) => inner.manifests.parents(repository, digest),
      signedAmong: (repository, digests, cosignArtifactType) => inner.manifests.signedAmong(repository, digests, cosignArtifactType),
    },
    tags: {
      find: (repository, tag) => cached(keyOf(repository, 't', tag), () => inner.tags.find(repository, tag)),
      async list(repository, page) {
        // A repository's whole tag list is read once (one statement: 24 ms for 50,000 tags) and
        // each page is cut from it, as clients walk `?n=&last=` page by page following the Link
        // header: 500 pages over 50,000 tags were 500 statements, 1.2 s on PGlite (bench/, "Reads
        // at scale"). Beyond `wholeTagList` names each page is read and cached on its own.
        const list = await wholeTagListOf(repository);
        if (list === undefined) return undefined;
        if (list !== TOO_MANY_TAGS) return pageOf(namesOf(list), page);
        return cached(keyOf(repository, 'l', `${page.last ?? ''}\u0000${page.limit}`), () => inner.tags.list(repository, page), pages);
      },
      async listJson(repository, max) {
        // The same object while it is cached: the handler keeps the answer it rendered from it.
        const list = await wholeTagListOf(repository);
        if (list === undefined) return undefined;
        if (list !== TOO_MANY_TAGS && list.whole.count <= max) return list.whole;
        return cached(keyOf(repository, 'J', String(max)), () => inner.tags.listJson(repository, max), pages);
      },
      listDetailed: (repository, page) =>
        cached(keyOf(repository, 'd', `${page.last ?? ''}\u0000${page.limit}`), () => inner.tags.listDetailed(repository, page), pages),
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

/**
 * A cache key: its parts joined into one flat string. A template literal made a chain of
 * concatenation cells, which the LRU's map kept beside the flattened text (a tag's entry: 550 ->
 * 286 bytes of heap).
 */
function flatKey(...parts: (string | number)[]): string {
  return parts.join('\u0000');
}

/** Repositories changed since the last drop of every entry: ~100 bytes each, ~1 MB at most. */
const MAX_GENERATIONS = 10_000;
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

/**
 * Bytes an entry's value costs in memory, as V8 holds it: every string with its header, objects
 * with their slots, a manifest's bytes with the buffer objects around them (and the allocation
 * outside the heap that backs them). Counting only the text and bytes (as before) let a 64 MiB
 * budget hold ~100 MB of heap and buffers at 50,000 manifests (bench/, "Reads at scale");
 * test/storage/cache-memory.test.ts measures what entries of each kind cost against this count.
 */
function sizeOf(value: Value): number {
  if (typeof value === 'number') return 16;
  if (typeof value === 'string') return stringBytes(value);
  if ('json' in value) return OBJECT_BYTES + stringBytes(value.json);
  // The text, and the names parsed from it once a page is asked for (a string and a slot each;
  // tag names are ASCII, one byte a character, and the text holds each with its quotes).
  if ('whole' in value) {
    return 2 * OBJECT_BYTES + sizeOf(value.whole) + value.whole.count * (STRING_BYTES + SLOT_BYTES) + value.whole.json.length;
  }
  if (Array.isArray(value)) {
    let total = OBJECT_BYTES;
    for (const item of value) {
      total +=
        SLOT_BYTES +
        (typeof item === 'string' ? stringBytes(item) : OBJECT_BYTES + stringBytes(item.name) + stringBytes(item.digest) + DATE_BYTES);
    }
    return total;
  }
  let total = OBJECT_BYTES + BUFFER_BYTES + value.content.length + stringBytes(value.digest) + stringBytes(value.mediaType);
  if (value.artifactType !== undefined) total += SLOT_BYTES + stringBytes(value.artifactType);
  if (value.subject !== undefined) total += SLOT_BYTES + stringBytes(value.subject);
  if (value.annotations) {
    total += SLOT_BYTES + OBJECT_BYTES;
    for (const [key, text] of Object.entries(value.annotations)) total += PROPERTY_BYTES + stringBytes(key) + stringBytes(text);
  }
  return total;
}

/**
 * A string: V8's header, and one byte a character if each fits one (Latin-1), else two. A long
 * text is counted at two without the look: a whole list of 50,000 tags is 550 KB of JSON, and
 * the look cost 2.6 ms of the first full tags/list after a start (bench/, "cold full tag list").
 */
function stringBytes(text: string): number {
  if (text.length > LOOKED_AT) return STRING_BYTES + 2 * text.length;
  return STRING_BYTES + (TWO_BYTE.test(text) ? 2 * text.length : text.length);
}

const TWO_BYTE = /[\u0100-\uffff]/;
const LOOKED_AT = 4096;

/** No cache, but writes still tell the bus (gate decisions and other replicas depend on it). */
function withWriteNotices(inner: MetadataStore, changed: (repository: string) => void): MetadataStore {
  const after = async <T>(repository: string, result: Promise<T>): Promise<T> => {
    const value = await result;
    changed(repository);
    return value;
  };
  return {
    ...inner,
    repositories: {
      ...inner.repositories,
      async removeEmpty(project) {
        const removed = await inner.repositories.removeEmpty(project);
        for (const repository of removed) changed(repository);
        return removed;
      },
    },
    blobs: { ...inner.blobs, remove: (r, d) => after(r, inner.blobs.remove(r, d)) },
    manifests: {
      ...inner.manifests,
      save: (r, m, refs, tag, options) => after(r, inner.manifests.save(r, m, refs, tag, options)),
      remove: (r, d) => after(r, inner.manifests.remove(r, d)),
    },
    tags: { ...inner.tags, remove: (r, t) => after(r, inner.tags.remove(r, t)) },
  };
}
