// REGISTRY_CACHE_MAXSIZE is a promise about memory: whatever the registry holds and whatever
// pushers put into names, tags and annotations, the metadata cache costs no more than that many
// bytes of the server's memory. Measured here as the growth of the JavaScript heap and of the
// memory outside it that buffers hold, after full collections, with the cache filled well past its
// budget by entries of each kind it keeps.
//
// The entries come from a stand-in for the database, made as the two real stores make them
// (storage/db.ts): each manifest's bytes in a buffer of its own, each text a string of its own.
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import fc from 'fast-check';
import { createCachedMetadataStore } from '../../storage/cached-metadata-store.js';
import type { ManifestRecord, MetadataStore, TagListJson, TagRecord } from '../../storage/metadata-store.js';

v8.setFlagsFromString('--expose-gc');
// Bytecode is heap too: V8 drops that of functions not run lately, which would show as memory
// the fill freed.
v8.setFlagsFromString('--no-flush-bytecode');
const gc = runInNewContext('gc') as () => void;

const BUDGET = 8 * 1024 * 1024;

/**
 * Heap and buffer memory in use after full collections. Between collections the event loop turns,
 * so what waits for it (weak callbacks, the freeing of buffers' memory) is done; the least seen
 * counts, once two rounds in a row have freed nothing worth counting.
 */
async function inUse(): Promise<number> {
  let least = Infinity;
  for (let calm = 0, round = 0; calm < 2 && round < 20; round++) {
    gc();
    await sleep(5);
    gc();
    const stats = v8.getHeapStatistics();
    const now = stats.used_heap_size + stats.external_memory;
    calm = now > least - 64 * 1024 ? calm + 1 : 0;
    least = Math.min(least, now);
  }
  return least;
}

/** A string of its own, as a database row's text arrives (not a literal shared by all). */
const fresh = (text: string): string => Buffer.from(text, 'utf8').toString('utf8');

interface Shape {
  kind: 'manifest' | 'tag' | 'tag-list' | 'detailed-page' | 'catalog-page';
  /** Manifest bytes. */
  size: number;
  /** Annotations: how many, and the text each value repeats. */
  annotations: number;
  text: string;
  /** Tag names in a list or page, and their length. */
  names: number;
  nameLength: number;
}

function manifestRecord(shape: Shape, seed: string): ManifestRecord {
  const content = Buffer.allocUnsafeSlow(shape.size);
  content.fill(seed);
  const record: ManifestRecord = {
    digest: fresh(`sha256:${createHash('sha256').update(seed).digest('hex')}`),
    mediaType: fresh('application/vnd.oci.image.manifest.v1+json'),
    content,
    size: content.length,
  };
  if (shape.annotations > 0) {
    record.annotations = {};
    for (let i = 0; i < shape.annotations; i++) record.annotations[fresh(`org.example.${i}`)] = fresh(`${shape.text}${seed}`);
  }
  return record;
}

const names = (shape: Shape, seed: string): string[] =>
  Array.from({ length: shape.names }, (_, i) => fresh(`${seed}-${i}-`.padEnd(shape.nameLength, 'x')));

function standIn(shape: Shape): MetadataStore {
  const answers = {
    manifests: { findByTag: (repository: string, tag: string) => Promise.resolve(manifestRecord(shape, `${repository}:${tag}`)) },
    tags: {
      find: (repository: string, tag: string) =>
        Promise.resolve(fresh(`sha256:${createHash('sha256').update(`${repository}:${tag}`).digest('hex')}`)),
      listJson: (repository: string): Promise<TagListJson> => {
        const list = names(shape, repository).sort();
        return Promise.resolve({ count: list.length, json: JSON.stringify(list) });
      },
      listDetailed: (repository: string): Promise<TagRecord[]> =>
        Promise.resolve(
          names(shape, repository).map((name) => ({ name, digest: fresh(`sha256:${'0'.repeat(64)}`), updatedAt: new Date() })),
        ),
    },
    repositories: { list: (page: { last?: string }) => Promise.resolve(names(shape, page.last ?? '')) },
    close: () => Promise.resolve(),
  };
  return answers as unknown as MetadataStore;
}

/** What one entry of the shape costs at least (its bytes and text alone): how many fill the budget. */
function atLeast(shape: Shape): number {
  switch (shape.kind) {
    case 'manifest':
      return shape.size + shape.annotations * shape.text.length + 200;
    case 'tag':
      return 250;
    default:
      return shape.names * shape.nameLength + 100;
  }
}

async function fill(store: MetadataStore, shape: Shape, i: number): Promise<void> {
  const repository = `project/repository-${Math.floor(i / 10)}`;
  const tag = `v${i % 10}`;
  switch (shape.kind) {
    case 'manifest':
      await store.manifests.findByTag(repository, tag);
      return;
    case 'tag':
      await store.tags.find(repository, tag);
      return;
    case 'tag-list':
      // A page, so the names are parsed from the cached text too.
      await store.tags.list(`project/list-${i}`, { limit: 10 });
      return;
    case 'detailed-page':
      await store.tags.listDetailed(repository, { limit: shape.names, last: tag });
      return;
    case 'catalog-page':
      await store.repositories.list({ limit: shape.names, last: `${i}` });
      return;
  }
}

const shapes = fc.record<Shape>({
  kind: fc.constantFrom('manifest', 'tag', 'tag-list', 'detailed-page', 'catalog-page'),
  size: fc.integer({ min: 0, max: 4096 }),
  annotations: fc.integer({ min: 0, max: 8 }),
  // Any text a pusher may put in an annotation, two-byte characters included.
  text: fc.string({ unit: 'binary', maxLength: 64 }),
  names: fc.integer({ min: 1, max: 200 }),
  nameLength: fc.integer({ min: 1, max: 128 }),
});

/** Memory a cache filled three times over with entries of the shape holds. */
async function measure(shape: Shape): Promise<number> {
  // The code that fills is compiled first (a throwaway store): compiled code is heap too.
  // Each store is let go of before the next measure (the caller's closure may outlive the run).
  let store: MetadataStore | undefined = createCachedMetadataStore(standIn(shape), { ttlMs: 60_000, maxBytes: BUDGET });
  for (let i = 0; i < 2000; i++) await fill(store, shape, i);
  await store.close();
  store = undefined;
  // Timers the cache set (its clock's, for the ttl) hold it until they ran.
  await sleep(20);
  const before = await inUse();
  store = createCachedMetadataStore(standIn(shape), { ttlMs: 60_000, maxBytes: BUDGET });
  const entries = Math.ceil((3 * BUDGET) / atLeast(shape));
  for (let i = 0; i < entries; i++) await fill(store, shape, i);
  const used = (await inUse()) - before;
  await store.close();
  store = undefined;
  await sleep(20);
  return used;
}

test('the metadata cache costs no more memory than its byte budget, whatever it holds', async (t) => {
  // What loading the test left (timers, weakly held objects) goes first.
  await sleep(100);
  await inUse();
  await fc.assert(
    fc.asyncProperty(shapes, async (shape) => {
      // At most the budget, and not by caching nothing: at least half of it put to use. A shape
      // is measured again before it counts as failed: once in CI a measure was off (which way was
      // not recorded) for a shape that measures 0.78-0.81 every time here, idle or loaded. A cache
      // that is over its budget is over it at every measure (the unfixed sizing: 1.44 each time).
      // Pages asked for by a cursor have an eighth of the budget to themselves
      // (storage/cached-metadata-store.ts, PAGE_SHARE): filled with them alone, that eighth.
      const share = shape.kind === 'detailed-page' || shape.kind === 'catalog-page' ? 1 / 8 : 1;
      const seen: string[] = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        const used = await measure(shape);
        seen.push((used / BUDGET).toFixed(2));
        if (used <= BUDGET && used >= (share * BUDGET) / 2) break;
      }
      t.log(`${shape.kind}: ${seen.join(', then ')} of the budget in use`);
      const last = Number(seen.at(-1));
      if (last > 1 || last < share / 2)
        throw new Error(`${JSON.stringify(shape)}: ${seen.join(', ')} of a budget of ${BUDGET} bytes in use`);
    }),
    {
      numRuns: 10,
      endOnFailure: true,
      verbose: 2,
      includeErrorInReport: true,
      // The bench's manifests at scale: ~450 bytes and one annotation each.
      examples: [[{ kind: 'manifest', size: 450, annotations: 1, text: 'scale', names: 1, nameLength: 1 }]],
    },
  );
  t.pass();
});
