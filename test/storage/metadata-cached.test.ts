// The cache in front of the metadata store (over PGlite) must keep the store's contract: every
// write through it is visible at once. Changes made behind its back (another replica) show within
// its ttl.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { createCachedMetadataStore } from '../../storage/cached-metadata-store.js';
import { createChangeBus, type Change, type ChangeBus } from '../../storage/change-bus.js';
import { createPgliteDb, type Db } from '../../storage/db.js';
import type { MetadataStore } from '../../storage/metadata-store.js';
import { migrate } from '../../storage/migrate.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { manifestOf, metadataStoreConformance, randomDigest, randomManifest, randomRepository } from '../conformance/metadata-store.js';
import { sleep } from '../helpers/wait.js';

let inner: MetadataStore | undefined;

// A long ttl: any write that fails to drop what it changed shows up as a failing conformance test.
metadataStoreConformance(test, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-cached-'));
  const db = await createPgliteDb(path.join(dir, 'database'));
  await migrate(db);
  inner = createPostgresMetadataStore(db);
  const store = createCachedMetadataStore(inner, { ttlMs: 10 * 60_000 });
  return {
    store,
    async cleanup() {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

function database(): MetadataStore {
  if (!inner) throw new Error('store not ready');
  return inner;
}

test('writes through the cache are visible at once, also after cached reads', async (t) => {
  const cache = createCachedMetadataStore(database(), { ttlMs: 10 * 60_000 });
  const repository = randomRepository();
  const [first, second] = [randomManifest(), randomManifest()];

  t.is(await cache.tags.find(repository, 'latest'), undefined);
  t.is(await cache.tags.list(repository, { limit: 10 }), undefined);
  await cache.manifests.save(repository, first, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), first.digest, 'a miss is not cached');
  t.deepEqual(await cache.tags.list(repository, { limit: 10 }), ['latest']);

  await cache.manifests.save(repository, second, [], 'latest');
  await cache.manifests.save(repository, second, [], 'v2');
  t.is(await cache.tags.find(repository, 'latest'), second.digest, 'retagging drops the cached tag');
  t.deepEqual(await cache.tags.list(repository, { limit: 10 }), ['latest', 'v2'], 'and the cached list');

  const untagged = randomManifest();
  t.is(await cache.manifests.find(repository, untagged.digest), undefined);
  await cache.manifests.save(repository, untagged, []);
  t.deepEqual(await cache.manifests.find(repository, untagged.digest), untagged);

  const blob = randomDigest();
  t.is(await cache.blobs.find(repository, blob), undefined);
  await cache.blobs.save(repository, blob, 0);
  t.is(await cache.blobs.find(repository, blob), 0, 'a zero size is a hit, not a miss');
});

test('removals drop cached tag, manifest and blob lookups', async (t) => {
  const cache = createCachedMetadataStore(database(), { ttlMs: 10 * 60_000 });
  const repository = randomRepository();
  const manifest = randomManifest();
  const blob = randomDigest();
  await cache.manifests.save(repository, manifest, [], 'a');
  await cache.manifests.save(repository, manifest, [], 'b');
  await cache.blobs.save(repository, blob, 42);
  // Fill the cache.
  t.is(await cache.tags.find(repository, 'a'), manifest.digest);
  t.is(await cache.tags.find(repository, 'b'), manifest.digest);
  t.deepEqual(await cache.tags.list(repository, { limit: 10 }), ['a', 'b']);
  t.deepEqual(await cache.manifests.find(repository, manifest.digest), manifest);
  t.is(await cache.blobs.find(repository, blob), 42);

  t.true(await cache.tags.remove(repository, 'a'));
  t.is(await cache.tags.find(repository, 'a'), undefined);
  t.deepEqual(await cache.tags.list(repository, { limit: 10 }), ['b']);

  t.true(await cache.manifests.remove(repository, manifest.digest));
  t.is(await cache.tags.find(repository, 'b'), undefined, 'removing a manifest drops its cached tags');
  t.deepEqual(await cache.tags.list(repository, { limit: 10 }), []);
  t.is(await cache.manifests.find(repository, manifest.digest), undefined);

  t.true(await cache.blobs.remove(repository, blob));
  t.is(await cache.blobs.find(repository, blob), undefined);
});

test('a change made behind the cache shows once the ttl has passed', async (t) => {
  const ttlMs = 1500;
  const cache = createCachedMetadataStore(database(), { ttlMs });
  const repository = randomRepository();
  const [first, second] = [randomManifest(), randomManifest()];
  await cache.manifests.save(repository, first, [], 'latest');
  const cachedAt = Date.now();
  t.is(await cache.tags.find(repository, 'latest'), first.digest);

  // Another replica retags: this process keeps answering from its cache for up to the ttl.
  await database().manifests.save(repository, second, [], 'latest');
  const stale = await cache.tags.find(repository, 'latest');
  if (Date.now() - cachedAt < ttlMs) t.is(stale, first.digest, 'served from the cache');
  await sleep(ttlMs + 100);
  t.is(await cache.tags.find(repository, 'latest'), second.digest);
});

// On PostgreSQL an entry outlives REGISTRY_CACHE_TTL only while the change bus confirms that it
// heard every change committed until lately (storage/change-bus.ts). Here the bus's confirmations
// are told by the test, and the change behind the cache is never announced: what a replica
// would serve if its notices were lost while its pings still came back. The rule under test: a
// value older than the TTL is served only with a confirmation sent within the TTL; and while
// confirmations come, entries are served from memory however old.
test('an entry outlives the ttl only while the bus confirms what it heard, within the ttl', async (t) => {
  const ttlMs = 120;
  await fc.assert(
    fc.asyncProperty(
      fc.record({ confirmFor: fc.option(fc.integer({ min: 0, max: 400 }), { nil: undefined }), readAt: fc.integer({ min: 0, max: 500 }) }),
      async ({ confirmFor, readAt }) => {
        const listeners: ((change: Change | 'all') => void)[] = [];
        let confirmed: number | undefined;
        const bus: ChangeBus = {
          publish: (change) => listeners.forEach((listener) => listener(change)),
          subscribe: (listener) => void listeners.push(listener),
          confirmedAt: () => confirmed,
          close: () => Promise.resolve(),
        };
        const cache = createCachedMetadataStore(database(), { ttlMs }, bus);
        const repository = randomRepository();
        const [first, second] = [randomManifest(), randomManifest()];
        await database().manifests.save(repository, first, [], 'latest');
        const start = performance.now();
        t.is(await cache.tags.find(repository, 'latest'), first.digest);
        const cachedAt = performance.now();
        await database().manifests.save(repository, second, [], 'latest');
        // Confirmations every 10 ms for `confirmFor` ms, then none.
        const confirming = setInterval(() => {
          if (confirmFor !== undefined && performance.now() - start <= confirmFor) confirmed = performance.now();
        }, 10);
        try {
          await sleep(Math.max(0, readAt - (performance.now() - start)));
          // The cache judges when the look-up starts (before its first await), with the
          // confirmation of that moment: the checks below follow from its rule whatever the
          // timing (a slow machine only moves `before` and `after` apart).
          const seen = confirmed;
          const before = performance.now();
          const served = await cache.tags.find(repository, 'latest');
          const after = performance.now();
          const confirmedLately = seen !== undefined && after - seen <= ttlMs;
          if (served === first.digest && !(seen !== undefined && before - seen <= ttlMs) && before - cachedAt > ttlMs + 5) {
            throw new Error(`a value ${Math.round(before - cachedAt)} ms old was served with no confirmation within the ttl`);
          }
          if (confirmedLately && served !== first.digest)
            throw new Error('the database was asked again though the bus had confirmed lately');
        } finally {
          clearInterval(confirming);
        }
      },
    ),
    {
      numRuns: 12,
      examples: [[{ confirmFor: undefined, readAt: 300 }], [{ confirmFor: 400, readAt: 350 }], [{ confirmFor: 100, readAt: 400 }]],
    },
  );
  t.pass();
});

test('the cache holds no more than its byte budget: old entries go, and are read again', async (t) => {
  const maxBytes = 1024 * 1024;
  const cache = createCachedMetadataStore(database(), { ttlMs: 10 * 60_000, maxBytes });
  const repository = randomRepository();
  const [first, second] = [randomManifest(), randomManifest()];
  await cache.manifests.save(repository, first, [], 'latest');
  t.deepEqual(await cache.manifests.findByTag(repository, 'latest'), first);
  // Another replica retags; meanwhile this one reads 2 MiB of manifests of another repository.
  await database().manifests.save(repository, second, [], 'latest');
  const other = randomRepository();
  for (let i = 0; i < 20; i++) {
    const big = manifestOf(Buffer.from(JSON.stringify({ schemaVersion: 2, nonce: randomUUID(), pad: 'x'.repeat(100 * 1024) })));
    await database().manifests.save(other, big, [], `big-${i}`);
    t.deepEqual(await cache.manifests.findByTag(other, `big-${i}`), big);
  }
  t.is(await cache.tags.find(repository, 'latest'), second.digest, 'the first entries were evicted');
});

// Tag lists are cut from one cached read of the whole list: any page of it must be the page the
// database gives, whatever names (the grammar's characters order as - . 0-9 A-Z _ a-z), whatever
// `last` a client sends (a name, a name that is not there, non-ASCII, past the end) and `n`, over
// lists cached whole and lists too long for that (here: more than 5 names); the same for listJson.
test('a tag list page from the cache is the page the database gives, for any names, last and n', async (t) => {
  const nameChar = fc.constantFrom(...'-.09AZ_az'.split(''));
  const tagName = fc
    .tuple(fc.constantFrom('0', 'A', '_', 'a', 'z'), fc.array(nameChar, { maxLength: 4 }))
    .map(([first, rest]) => first + rest.join(''));
  const last = fc.option(fc.oneof(tagName, fc.string({ unit: 'grapheme', maxLength: 3 }), fc.constantFrom('', '~', 'é', '\u{1F600}')), {
    nil: undefined,
  });
  await fc.assert(
    fc.asyncProperty(
      fc.uniqueArray(tagName, { minLength: 1, maxLength: 9 }),
      fc.array(fc.record({ last, limit: fc.integer({ min: 1, max: 11 }) }), { minLength: 1, maxLength: 6 }),
      async (tags, pages) => {
        const cache = createCachedMetadataStore(database(), { ttlMs: 10 * 60_000, wholeTagList: 5 });
        const repository = randomRepository();
        const manifest = randomManifest();
        for (const tag of tags) await cache.manifests.save(repository, manifest, [], tag);
        for (const page of pages) {
          const query = { limit: page.limit, ...(page.last === undefined ? {} : { last: page.last }) };
          t.deepEqual(await cache.tags.list(repository, query), await database().tags.list(repository, query), JSON.stringify(query));
          // And the list as JSON text, whole (up to `limit`), from a list cached whole or not.
          t.deepEqual(await cache.tags.listJson(repository, page.limit), await database().tags.listJson(repository, page.limit));
        }
      },
    ),
    { numRuns: 40 },
  );
});

/**
 * A cached store over the database, counting the tag list reads that reach the database, and a
 * repository with `count` tags (t000, t001, ...) on one manifest.
 */
async function countingTagLists(count: number, wholeTagList?: number) {
  let reads = 0;
  const inner = database();
  const counting: MetadataStore = {
    ...inner,
    tags: {
      ...inner.tags,
      list: (repository, page) => {
        reads += 1;
        return inner.tags.list(repository, page);
      },
      listJson: (repository, max) => {
        reads += 1;
        return inner.tags.listJson(repository, max);
      },
    },
  };
  const cache = createCachedMetadataStore(counting, { ttlMs: 10 * 60_000, ...(wholeTagList ? { wholeTagList } : {}) });
  const repository = randomRepository();
  const manifest = randomManifest();
  const tags = Array.from({ length: count }, (_, i) => `t${String(i).padStart(3, '0')}`);
  for (const tag of tags) await cache.manifests.save(repository, manifest, [], tag);
  return { cache, repository, manifest, tags, reads: () => reads };
}

test('a walk of a tag list page by page reads the list from the database once; a push shows on every page', async (t) => {
  const { cache, repository, manifest, tags, reads } = await countingTagLists(25);
  const walk = async (): Promise<string[]> => {
    const seen: string[] = [];
    for (let page = await cache.tags.list(repository, { limit: 10 }); page?.length;) {
      seen.push(...page);
      page = await cache.tags.list(repository, { limit: 10, last: page[page.length - 1]! });
    }
    return seen;
  };
  t.deepEqual(await walk(), tags);
  t.is(reads(), 1);
  await cache.manifests.save(repository, manifest, [], 't0105');
  t.deepEqual(await walk(), [...tags.slice(0, 11), 't0105', ...tags.slice(11)].sort());
  t.is(reads(), 2, 'the push dropped the cached list: read again once');
  // The whole list is the same text: no read.
  t.deepEqual(JSON.parse((await cache.tags.listJson(repository, 1000))!.json), [...tags.slice(0, 11), 't0105', ...tags.slice(11)].sort());
  t.is(reads(), 2);
});

test('requests that miss a tag list together share one read of it', async (t) => {
  const { cache, repository, manifest, tags, reads } = await countingTagLists(30);
  const pages = await Promise.all([
    ...Array.from({ length: 8 }, (_, i) => cache.tags.list(repository, { limit: 3, last: tags[i]! })),
    cache.tags.listJson(repository, 100).then((whole) => whole && (JSON.parse(whole.json) as string[])),
  ]);
  t.is(reads(), 1);
  t.deepEqual(
    pages.slice(0, 8),
    Array.from({ length: 8 }, (_, i) => tags.slice(i + 1, i + 4)),
  );
  t.deepEqual(pages[8], tags);
  // A push drops the list; the next readers share the next read.
  await cache.manifests.save(repository, manifest, [], 'u1');
  await Promise.all([cache.tags.list(repository, { limit: 100 }), cache.tags.list(repository, { limit: 2 })]);
  t.is(reads(), 2);
});

test('a whole tag list longer than the cache keeps whole is cached as it was asked for', async (t) => {
  const { cache, repository, tags, reads } = await countingTagLists(8, 5);
  const first = await cache.tags.listJson(repository, 100);
  t.deepEqual(first && JSON.parse(first.json), tags);
  t.is(reads(), 2, 'one read finds the list too long to keep whole, one reads it');
  t.deepEqual(await cache.tags.listJson(repository, 100), first);
  t.is(reads(), 2);
});

/** The database, counting the manifest reads by tag that reach it. */
function countingManifestReads(): { counting: MetadataStore; reads: () => number } {
  let reads = 0;
  const inner = database();
  const counting: MetadataStore = {
    ...inner,
    manifests: {
      ...inner.manifests,
      findByTag: (repository, tag) => {
        reads += 1;
        return inner.manifests.findByTag(repository, tag);
      },
    },
  };
  return { counting, reads: () => reads };
}

test('listing pages at any cursor a client sends never push manifests and tags out of the cache', async (t) => {
  const { counting, reads } = countingManifestReads();
  const maxBytes = 1024 * 1024;
  const cache = createCachedMetadataStore(counting, { ttlMs: 10 * 60_000, maxBytes, wholeTagList: 5 });
  const repository = randomRepository();
  const manifest = randomManifest();
  // A catalog of 200 repositories and a tag list too long to keep whole.
  for (let i = 0; i < 200; i++) await database().manifests.save(`${randomRepository()}-${'n'.repeat(40)}`, randomManifest(), [], 'v1');
  for (let i = 0; i < 40; i++)
    await database().manifests.save(repository, manifest, [], `t${String(i).padStart(2, '0')}-${'x'.repeat(60)}`);
  t.deepEqual(await cache.manifests.findByTag(repository, 't00-' + 'x'.repeat(60)), manifest);
  t.is(reads(), 1);
  // A hostile client walks fresh cursors: each page is a new entry of up to a page of names, many
  // times the budget in all.
  await fc.assert(
    fc.asyncProperty(fc.string({ maxLength: 12 }), fc.integer({ min: 100, max: 1000 }), async (last, limit) => {
      await cache.repositories.list({ last: `c${last}`, limit });
      await cache.tags.list(repository, { last: `t${last}`, limit });
      await cache.tags.listDetailed(repository, { last: `t${last}`, limit });
    }),
    { numRuns: 400 },
  );
  t.deepEqual(await cache.manifests.findByTag(repository, 't00-' + 'x'.repeat(60)), manifest);
  t.is(reads(), 1, 'the manifest was still cached');
});

test('on a sole writer (the embedded database) entries outlive the ttl', async (t) => {
  const { counting, reads } = countingManifestReads();
  const cache = createCachedMetadataStore(counting, { ttlMs: 50, soleWriter: true });
  const repository = randomRepository();
  const [first, second] = [randomManifest(), randomManifest()];
  await cache.manifests.save(repository, first, [], 'latest');
  t.deepEqual(await cache.manifests.findByTag(repository, 'latest'), first);
  await sleep(100);
  t.deepEqual(await cache.manifests.findByTag(repository, 'latest'), first);
  t.is(reads(), 1, 'read from the database once');
  // Writes through it still drop what they change.
  await cache.manifests.save(repository, second, [], 'latest');
  t.deepEqual(await cache.manifests.findByTag(repository, 'latest'), second);
});

test('a ttl of zero means no cache: a change behind it shows at once', async (t) => {
  const cache = createCachedMetadataStore(database(), { ttlMs: 0 });
  const repository = randomRepository();
  const [first, second] = [randomManifest(), randomManifest()];
  await cache.manifests.save(repository, first, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), first.digest);
  await database().manifests.save(repository, second, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), second.digest);
});

test('past its count of changed repositories the cache starts again, and never serves what a change replaced', async (t) => {
  const cache = createCachedMetadataStore(database(), { ttlMs: 10 * 60_000, maxGenerations: 3 });
  const repository = randomRepository();
  const [first, second] = [randomManifest(), randomManifest()];
  // Read before any change through the cache: the repository's first generation.
  await database().manifests.save(repository, first, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), first.digest);
  // The entry read before this write stays in the LRU under its old generation's key.
  await cache.manifests.save(repository, second, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), second.digest);
  // Changes to more repositories than it counts: the numbers start again.
  for (let i = 0; i < 4; i++) await cache.manifests.save(randomRepository(), randomManifest(), [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), second.digest);
  await cache.manifests.save(repository, first, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), first.digest);
});

test('a change announced on the bus (another replica) drops cached entries at once', async (t) => {
  const bus = createChangeBus({ db: { query: async () => [] } as unknown as Db });
  t.teardown(() => bus.close());
  const cache = createCachedMetadataStore(database(), { ttlMs: 10 * 60_000 }, bus);
  const repository = randomRepository();
  const [first, second] = [randomManifest(), randomManifest()];
  await cache.manifests.save(repository, first, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), first.digest);
  await database().manifests.save(repository, second, [], 'latest');
  t.is(await cache.tags.find(repository, 'latest'), first.digest, 'still cached');
  bus.publish({ repository });
  t.is(await cache.tags.find(repository, 'latest'), second.digest);
});

test('a repository made behind the cache joins the catalog when the bus announces it', async (t) => {
  const bus = createChangeBus({ db: { query: async () => [] } as unknown as Db });
  t.teardown(() => bus.close());
  const cache = createCachedMetadataStore(database(), { ttlMs: 10 * 60_000, soleWriter: true }, bus);
  const project = randomRepository();
  t.deepEqual(await cache.repositories.list({ project, limit: 10 }), []);
  await database().manifests.save(`${project}/b`, randomManifest(), []);
  t.deepEqual(await cache.repositories.list({ project, limit: 10 }), [], 'still cached');
  bus.publish({ repository: `${project}/b` });
  t.deepEqual(await cache.repositories.list({ project, limit: 10 }), [`${project}/b`]);
});
