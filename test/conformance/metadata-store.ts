// The one MetadataStore suite, run against embedded PostgreSQL (PGlite), a real PostgreSQL server
// and the cache in front of either. It checks the contract in storage/metadata-store.ts. The store
// is shared by the tests of a file, which run concurrently: every test names its own repositories
// (a random prefix) and uploads (random ids).
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { TestFn } from 'ava';
import { digestOf } from '../../storage/digest.js';
import fc from 'fast-check';
import { ManifestReferenceError } from '../../storage/errors.js';
import type { ManifestRecord, ManifestReference, MetadataStore, Page, Referrer } from '../../storage/metadata-store.js';
import { uploadChunkKey } from '../../storage/paths.js';
import { withinSeconds } from '../helpers/wait.js';

export interface MetadataStoreFixture {
  store: MetadataStore;
  cleanup(): Promise<void>;
}

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

/** A prefix no other test uses, so repository names never collide; ends in a nested name. */
export function randomRepository(): string {
  return `conformance-${randomBytes(6).toString('hex')}/a/b/c`;
}

export function randomDigest(): string {
  return digestOf('sha256', randomBytes(32));
}

/** A manifest record whose content is arbitrary bytes (the store must not care that it is JSON). */
export function manifestOf(content: Buffer, extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return { digest: digestOf('sha256', content), mediaType: OCI_MANIFEST, content, size: content.length, ...extra };
}

export function randomManifest(extra: Partial<ManifestRecord> = {}): ManifestRecord {
  return manifestOf(Buffer.from(JSON.stringify({ schemaVersion: 2, nonce: randomUUID() })), extra);
}

/** A map's entries sorted by key: findMany promises which entries, not their order. */
function entries(map: Map<string, number>): Array<[string, number]> {
  return [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export function metadataStoreConformance(test: TestFn, makeStore: () => Promise<MetadataStoreFixture>): void {
  let fixture: MetadataStoreFixture | undefined;
  test.before(async () => {
    fixture = await makeStore();
  });
  test.after.always(async () => {
    await fixture?.cleanup();
  });
  function store(): MetadataStore {
    if (!fixture) throw new Error('metadata store fixture not ready');
    return fixture.store;
  }
  /** A blob stored and linked in the repository, for manifests to reference. */
  async function storedBlob(repository: string): Promise<ManifestReference> {
    const digest = randomDigest();
    await store().blobs.save(repository, digest, 10);
    return { digest, kind: 'blob', size: 10 };
  }

  /** Every name after `after` that starts with `prefix`, fetched in pages of `limit`. */
  async function pages(list: (page: Page) => Promise<string[] | undefined>, prefix: string, limit: number) {
    const seen: string[][] = [];
    let last: string | undefined = prefix;
    for (;;) {
      const page: string[] = (await list({ ...(last === undefined ? {} : { last }), limit })) ?? [];
      if (page.length > limit) throw new Error(`page of ${page.length} exceeds limit ${limit}`);
      const ours = page.filter((name) => name.startsWith(prefix));
      if (ours.length > 0) seen.push(ours);
      if (ours.length < limit) return seen;
      last = page[page.length - 1];
    }
  }

  // Repositories

  test('a repository exists once a manifest or a blob link is stored in it', async (t) => {
    const repository = randomRepository();
    const parent = repository.slice(0, repository.lastIndexOf('/'));
    const linked = `${repository}-blobs`;
    t.false(await store().repositories.exists(repository));
    await store().manifests.save(repository, randomManifest(), []);
    await store().blobs.save(linked, randomDigest(), 10);
    t.true(await store().repositories.exists(repository));
    t.true(await store().repositories.exists(linked));
    t.false(await store().repositories.exists(parent), 'a path prefix is no repository');
    t.false(await store().repositories.exists(`${repository}/d`));
  });

  test('repositories are listed in byte order, only with a manifest, paged by last and limit', async (t) => {
    const prefix = `conformance-${randomBytes(6).toString('hex')}`;
    // '-' < '.' < '/' < '_' bytewise; a locale collation would order these differently.
    const listed = [`${prefix}/a`, `${prefix}/a-b`, `${prefix}/a.b`, `${prefix}/a/b/c`, `${prefix}/a_b`, `${prefix}/b`];
    for (const name of [...listed].reverse()) await store().manifests.save(name, randomManifest(), []);
    await store().blobs.save(`${prefix}/blobs-only`, randomDigest(), 1);
    const emptied = randomManifest();
    await store().manifests.save(`${prefix}/emptied`, emptied, [], 'latest');
    await store().manifests.remove(`${prefix}/emptied`, emptied.digest);

    t.deepEqual((await pages((p) => store().repositories.list(p), prefix, 100)).flat(), listed);
    t.deepEqual(await pages((p) => store().repositories.list(p), prefix, 2), [listed.slice(0, 2), listed.slice(2, 4), listed.slice(4, 6)]);
    t.deepEqual(await store().repositories.list({ last: `${prefix}/a.b`, limit: 2 }), listed.slice(3, 5));
    const after = await store().repositories.list({ last: `${prefix}/a.a`, limit: 1 });
    t.deepEqual(after, [`${prefix}/a.b`], 'last need not exist');
    const unpaged = await store().repositories.list({ limit: 1_000_000 });
    t.deepEqual(
      unpaged.filter((name) => name.startsWith(prefix)),
      listed,
    );
    t.deepEqual(unpaged, [...unpaged].sort(), 'the whole list is in byte order');
  });

  test('a repository is listed from its first manifest until its last is removed, read in between', async (t) => {
    const project = `conformance-${randomBytes(6).toString('hex')}`;
    const [first, second] = [randomManifest(), randomManifest()];
    const listed = (): Promise<string[]> => store().repositories.list({ project, limit: 100 });
    t.deepEqual(await listed(), []);
    await store().manifests.save(`${project}/a`, first, [], 'latest');
    t.deepEqual(await listed(), [`${project}/a`], 'a catalog read before the push does not hide it');
    await store().manifests.save(`${project}/b`, second, []);
    t.deepEqual(await listed(), [`${project}/a`, `${project}/b`]);
    t.true(await store().tags.remove(`${project}/a`, 'latest'));
    t.deepEqual(await listed(), [`${project}/a`, `${project}/b`], 'an untagged manifest keeps its repository listed');
    await store().manifests.remove(`${project}/a`, first.digest);
    t.deepEqual(await listed(), [`${project}/b`]);
    await store().manifests.remove(`${project}/b`, second.digest);
    t.deepEqual(await listed(), []);
  });

  test('repositories of one project: the project itself and names under it, paged', async (t) => {
    const project = `conformance-${randomBytes(6).toString('hex')}`;
    const inside = [project, `${project}/a`, `${project}/a/b`, `${project}/b`];
    // Same leading characters, other projects: a prefix match on the name alone would take these.
    const outside = [`${project}-x/a`, `${project}.d/a`, `${project}_/a`, `${project}x`, project.slice(0, -1)];
    for (const name of [...inside, ...outside]) await store().manifests.save(name, randomManifest(), []);

    t.deepEqual(await store().repositories.list({ project, limit: 100 }), inside);
    t.deepEqual(await store().repositories.list({ project, limit: 2 }), inside.slice(0, 2));
    t.deepEqual(await store().repositories.list({ project, last: inside[1]!, limit: 2 }), inside.slice(2, 4));
    t.deepEqual(await store().repositories.list({ project, last: inside[3]!, limit: 2 }), []);
    t.deepEqual(await store().repositories.list({ project: `${project}/a`, limit: 100 }), inside.slice(1, 3));
    t.deepEqual(await store().repositories.list({ project: `${project}-`, limit: 100 }), []);
  });

  // Blob links

  test('blob links: save, find, findMany and remove, per repository', async (t) => {
    const repository = randomRepository();
    const other = `${repository}-other`;
    const [a, b, empty, unknown] = [randomDigest(), randomDigest(), randomDigest(), randomDigest()];
    t.is(await store().blobs.find(repository, a), undefined);
    await store().blobs.save(repository, a, 1234);
    await store().blobs.save(repository, a, 1234);
    await store().blobs.save(repository, b, 5_000_000_000);
    await store().blobs.save(repository, empty, 0);
    await store().blobs.save(other, b, 5_000_000_000);

    t.is(await store().blobs.find(repository, a), 1234);
    t.is(await store().blobs.find(repository, b), 5_000_000_000, 'sizes beyond 32 bits come back as numbers');
    t.is(await store().blobs.find(repository, empty), 0);
    t.is(await store().blobs.find(other, a), undefined, 'a link belongs to one repository');
    t.deepEqual(
      entries(await store().blobs.findMany(repository, [a, b, empty, unknown])),
      entries(
        new Map([
          [a, 1234],
          [b, 5_000_000_000],
          [empty, 0],
        ]),
      ),
    );
    t.is((await store().blobs.findMany(repository, [])).size, 0);
    t.is((await store().blobs.findMany(`${repository}-unknown`, [a])).size, 0);

    t.true(await store().blobs.remove(repository, b));
    t.false(await store().blobs.remove(repository, b));
    t.false(await store().blobs.remove(repository, unknown));
    t.is(await store().blobs.find(repository, b), undefined);
    t.is(await store().blobs.find(other, b), 5_000_000_000, 'unlinking leaves other repositories alone');
    t.deepEqual(entries(await store().blobs.findMany(repository, [a, b])), [[a, 1234]]);
    await store().blobs.save(repository, b, 5_000_000_000);
    t.is(await store().blobs.find(repository, b), 5_000_000_000, 'a removed link can be saved again');
  });

  // Manifests

  test('a manifest round-trips byte for byte, with and without optional fields', async (t) => {
    const repository = randomRepository();
    const binary = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256));
    const plain = manifestOf(binary, { mediaType: OCI_INDEX });
    const subject = randomDigest();
    const full = randomManifest({
      artifactType: 'application/vnd.example.sbom',
      subject,
      annotations: { 'org.opencontainers.image.created': '2024-01-01T00:00:00Z', 'x.ünïcode': '✓ "quoted"' },
    });
    await store().manifests.save(repository, plain, [await storedBlob(repository)]);
    const child = randomManifest();
    await store().manifests.save(repository, child, []);
    await store().manifests.save(repository, full, [
      await storedBlob(repository),
      { digest: child.digest, kind: 'manifest', size: child.size },
    ]);

    const gotPlain = await store().manifests.find(repository, plain.digest);
    t.deepEqual(gotPlain, plain);
    t.true(Buffer.isBuffer(gotPlain?.content), 'content is a Buffer');
    t.true(gotPlain?.content.equals(binary), 'every byte value survives, NUL included');
    t.false(gotPlain !== undefined && 'artifactType' in gotPlain, 'absent fields stay absent');
    t.deepEqual(await store().manifests.find(repository, full.digest), full);
    t.is(await store().manifests.find(repository, randomDigest()), undefined);
    t.is(await store().manifests.find(`${repository}-other`, full.digest), undefined);
    t.deepEqual(
      entries(await store().manifests.findMany(repository, [plain.digest, full.digest, randomDigest()])),
      entries(
        new Map([
          [plain.digest, plain.size],
          [full.digest, full.size],
        ]),
      ),
    );
    t.is((await store().manifests.findMany(repository, [])).size, 0);
    t.is((await store().manifests.findMany(`${repository}-other`, [plain.digest])).size, 0);
  });

  test('a manifest read holds only its own bytes: caching many small ones keeps no larger buffers alive', async (t) => {
    // The metadata cache budgets a manifest by its length; bytes that are a view of a shared 8 KiB
    // buffer (pg's bytea decoding) kept thirteen times that alive, 404 MB at 50,000 manifests.
    const repository = randomRepository();
    const manifests = Array.from({ length: 4 }, () => randomManifest());
    for (const [i, manifest] of manifests.entries()) await store().manifests.save(repository, manifest, [], `v${i}`);
    for (const [i, manifest] of manifests.entries()) {
      for (const read of [
        await store().manifests.find(repository, manifest.digest),
        await store().manifests.findByTag(repository, `v${i}`),
      ]) {
        t.true(read?.content.equals(manifest.content));
        t.is(read?.content.buffer.byteLength, manifest.content.length, 'the bytes are not a view of a larger buffer');
      }
    }
  });

  test("property: manifests looked up by tag at the same time each get their own repository's, or none", async (t) => {
    // Lookups made together may go to the database as one statement (storage/batched-lookup.ts):
    // the same tag in two repositories, a repository or tag that does not exist, the same lookup
    // twice, must each come back as a lookup of its own would.
    const repositories = [randomRepository(), randomRepository(), randomRepository(), randomRepository()];
    const tags = ['latest', 'v1', 'v2', 'missing'];
    const expected = new Map<string, ManifestRecord | undefined>();
    for (const [r, repository] of repositories.slice(0, 3).entries()) {
      for (const tag of tags.slice(0, 3 - (r % 2))) {
        const manifest = randomManifest(
          r === 1
            ? { artifactType: 'application/example', annotations: { tag }, mediaType: 'application/vnd.oci.image.index.v1+json' }
            : {},
        );
        await store().manifests.save(repository, manifest, [], tag);
        expected.set(`${repository} ${tag}`, manifest);
      }
    }
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom(...repositories), fc.constantFrom(...tags)), { minLength: 1, maxLength: 40 }),
        async (lookups) => {
          const found = await Promise.all(lookups.map(([repository, tag]) => store().manifests.findByTag(repository, tag)));
          for (const [i, [repository, tag]] of lookups.entries()) {
            assert.deepEqual(found[i], expected.get(`${repository} ${tag}`), `${repository}:${tag}`);
          }
        },
      ),
      { numRuns: 40 },
    );
    t.pass();
  });

  test('a manifest naming a blob that is not stored is refused, and nothing is saved', async (t) => {
    const repository = randomRepository();
    const manifest = randomManifest();
    const missing: ManifestReference = { digest: randomDigest(), kind: 'blob', size: 3 };
    const err = await t.throwsAsync(store().manifests.save(repository, manifest, [missing], 'v1'), {
      instanceOf: ManifestReferenceError,
    });
    t.deepEqual(err?.reference, missing);
    t.is(err?.stored, undefined);
    t.is(await store().manifests.find(repository, manifest.digest), undefined);
    t.is(await store().tags.find(repository, 'v1'), undefined);
    t.false(await store().repositories.exists(repository), 'no repository is created for a refused manifest');
  });

  // A hostile project member pushes a manifest naming content of a repository they cannot read
  // (or content unlinked a moment ago), hoping to pull it from their own: the save must refuse
  // every reference not in this repository at its declared size, whatever else the list holds.
  test('a manifest is saved only when every reference is in its repository at its declared size', async (t) => {
    const situations = {
      present: ['blob-here', 'manifest-here'],
      faulty: ['blob-other-size', 'blob-unlinked', 'manifest-other-size'],
      absent: ['blob-elsewhere', 'blob-nowhere', 'manifest-elsewhere'],
    } as const;
    type Situation = (typeof situations)[keyof typeof situations][number];
    const anyOf = (...lists: ReadonlyArray<readonly Situation[]>) => fc.constantFrom(...lists.flat());
    const scenario = fc.oneof(
      fc.record({
        existing: fc.constant(true),
        situations: fc.array(anyOf(situations.present, situations.faulty, situations.absent), { maxLength: 5 }),
        pending: fc.boolean(),
      }),
      // A repository that does not exist yet: nothing can be in it.
      fc.record({ existing: fc.constant(false), situations: fc.array(anyOf(situations.absent), { maxLength: 3 }), pending: fc.boolean() }),
    );
    /** Puts the content in place; the reference, and what the store holds of it here (a fault if it differs). */
    async function arrange(repository: string, situation: Situation): Promise<{ ref: ManifestReference; stored: number | undefined }> {
      const elsewhere = `${repository}-elsewhere`;
      const digest = randomDigest();
      const size = 100 + Math.floor(Math.random() * 1000);
      switch (situation) {
        case 'blob-here':
          await store().blobs.save(repository, digest, size);
          return { ref: { digest, kind: 'blob', size }, stored: size };
        case 'blob-other-size':
          await store().blobs.save(repository, digest, size);
          return { ref: { digest, kind: 'blob', size: size + 1 }, stored: size };
        case 'blob-unlinked':
          await store().blobs.save(repository, digest, size);
          await store().blobs.remove(repository, digest);
          return { ref: { digest, kind: 'blob', size }, stored: undefined };
        case 'blob-elsewhere':
          await store().blobs.save(elsewhere, digest, size);
          return { ref: { digest, kind: 'blob', size }, stored: undefined };
        case 'blob-nowhere':
          return { ref: { digest, kind: 'blob', size }, stored: undefined };
        case 'manifest-here':
        case 'manifest-other-size':
        case 'manifest-elsewhere': {
          const child = randomManifest();
          await store().manifests.save(situation === 'manifest-elsewhere' ? elsewhere : repository, child, []);
          const declared = situation === 'manifest-other-size' ? child.size - 1 : child.size;
          return {
            ref: { digest: child.digest, kind: 'manifest', size: declared },
            stored: situation === 'manifest-elsewhere' ? undefined : child.size,
          };
        }
      }
    }
    await fc.assert(
      fc.asyncProperty(scenario, async ({ existing, situations: chosen, pending }) => {
        const repository = randomRepository();
        if (existing) await store().manifests.save(repository, randomManifest(), [], 'base');
        const arranged: Array<{ ref: ManifestReference; stored: number | undefined }> = [];
        for (const situation of chosen) arranged.push(await arrange(repository, situation));
        // A mirror's blobs come later (blobsPending): only its child manifests are checked.
        const fault = arranged.find(({ ref, stored }) => stored !== ref.size && (ref.kind === 'manifest' || !pending));
        const manifest = randomManifest();
        const save = store().manifests.save(
          repository,
          manifest,
          arranged.map((a) => a.ref),
          'pushed',
          pending ? { blobsPending: true } : {},
        );
        if (fault) {
          const err = await t.throwsAsync(save, { instanceOf: ManifestReferenceError });
          t.deepEqual(err?.reference, fault.ref, "the first reference at fault, in the manifest's order");
          t.is(err?.stored, fault.stored);
          t.is(await store().manifests.find(repository, manifest.digest), undefined, 'nothing saved');
          t.is(await store().tags.find(repository, 'pushed'), undefined);
          t.is(await store().repositories.exists(repository), existing, 'no repository created');
        } else {
          await save;
          t.deepEqual(await store().manifests.findByTag(repository, 'pushed'), manifest);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('saving a manifest again is idempotent and may add a tag', async (t) => {
    const repository = randomRepository();
    const manifest = randomManifest();
    const references = [await storedBlob(repository)];
    await store().manifests.save(repository, manifest, references);
    await store().manifests.save(repository, manifest, references);
    await store().manifests.save(repository, manifest, references, 'v1');
    await store().manifests.save(repository, manifest, references, 'v1');
    await store().manifests.save(repository, manifest, [], 'latest');
    t.deepEqual(await store().manifests.find(repository, manifest.digest), manifest);
    t.deepEqual(await store().tags.list(repository, { limit: 10 }), ['latest', 'v1']);
    t.is(await store().tags.find(repository, 'v1'), manifest.digest);
    t.is(await store().tags.find(repository, 'latest'), manifest.digest);
  });

  test('the same manifest in two repositories is two records', async (t) => {
    const repository = randomRepository();
    const other = `${repository}-other`;
    const manifest = randomManifest();
    await store().manifests.save(repository, manifest, [], 'latest');
    await store().manifests.save(other, manifest, [], 'latest');
    t.true(await store().manifests.remove(repository, manifest.digest));
    t.is(await store().manifests.find(repository, manifest.digest), undefined);
    t.deepEqual(await store().manifests.find(other, manifest.digest), manifest);
    t.is(await store().tags.find(other, 'latest'), manifest.digest);
  });

  test('retagging moves the tag to the new manifest', async (t) => {
    const repository = randomRepository();
    const first = randomManifest();
    const second = randomManifest();
    await store().manifests.save(repository, first, [], 'latest');
    t.is(await store().tags.find(repository, 'latest'), first.digest);
    t.deepEqual(await store().manifests.findByTag(repository, 'latest'), first);
    await store().manifests.save(repository, second, [], 'latest');
    t.is(await store().tags.find(repository, 'latest'), second.digest);
    t.deepEqual(await store().manifests.findByTag(repository, 'latest'), second, 'by tag, the manifest it names now');
    t.deepEqual(await store().tags.list(repository, { limit: 10 }), ['latest']);
    t.deepEqual(await store().manifests.find(repository, first.digest), first, 'the old manifest stays, untagged');
    await store().manifests.save(repository, first, [], 'latest');
    t.is(await store().tags.find(repository, 'latest'), first.digest, 'and can be tagged back');
    t.deepEqual(await store().manifests.findByTag(repository, 'latest'), first);
  });

  test('removing a manifest removes it and every tag pointing at it, nothing else', async (t) => {
    const repository = randomRepository();
    const removed = randomManifest();
    const kept = randomManifest();
    await store().manifests.save(repository, removed, [await storedBlob(repository)], 'a');
    await store().manifests.save(repository, removed, [], 'b');
    await store().manifests.save(repository, kept, [], 'c');
    t.is(await store().tags.find(repository, 'a'), removed.digest);
    t.deepEqual(await store().manifests.findByTag(repository, 'a'), removed);

    t.true(await store().manifests.remove(repository, removed.digest));
    t.is(await store().manifests.find(repository, removed.digest), undefined);
    t.is(await store().tags.find(repository, 'a'), undefined);
    t.is(await store().manifests.findByTag(repository, 'a'), undefined, 'nor by its tag');
    t.is(await store().tags.find(repository, 'b'), undefined);
    t.deepEqual(await store().tags.list(repository, { limit: 10 }), ['c']);
    t.deepEqual(entries(await store().manifests.findMany(repository, [removed.digest, kept.digest])), [[kept.digest, kept.size]]);
    t.false(await store().manifests.remove(repository, removed.digest));
    t.false(await store().manifests.remove(`${repository}-unknown`, kept.digest));

    await store().manifests.save(repository, removed, [await storedBlob(repository)], 'a');
    const again = await store().manifests.find(repository, removed.digest);
    t.deepEqual(again, removed, 'a removed manifest can be pushed again');
    t.is(await store().tags.find(repository, 'a'), removed.digest);
  });

  test("removing a manifest removes cosign's tags for it in its repository; their manifests stay", async (t) => {
    const repository = randomRepository();
    const [image, other, signature] = [randomManifest(), randomManifest(), randomManifest()];
    const attach = (digest: string, suffix: string) => `${digest.replace(':', '-')}.${suffix}`;
    await store().manifests.save(repository, image, [], 'v1');
    await store().manifests.save(repository, other, [], 'v2');
    for (const suffix of ['sig', 'att', 'sbom']) await store().manifests.save(repository, signature, [], attach(image.digest, suffix));
    await store().manifests.save(repository, signature, [], attach(other.digest, 'sig'));
    await store().manifests.save(repository, signature, [], `${attach(image.digest, 'sig')}x`);
    const elsewhere = randomRepository();
    await store().manifests.save(elsewhere, signature, [], attach(image.digest, 'sig'));

    t.true(await store().manifests.remove(repository, image.digest));
    t.deepEqual(
      await store().tags.list(repository, { limit: 10 }),
      [attach(other.digest, 'sig'), `${attach(image.digest, 'sig')}x`, 'v2'].sort(),
    );
    t.deepEqual(await store().manifests.find(repository, signature.digest), signature);
    t.is(await store().tags.find(elsewhere, attach(image.digest, 'sig')), signature.digest, 'another repository keeps its tag');
  });

  test("removeEmpty takes a project's repositories without manifests and their blob links, and nothing of other projects", async (t) => {
    const project = randomRepository().replace('/', '-');
    const held = `${project}/held`;
    const emptied = `${project}/emptied`;
    const blob = await storedBlob(held);
    await store().manifests.save(held, randomManifest(), [blob], 'v1');
    const link = await storedBlob(emptied);
    t.is(await store().blobs.find(emptied, link.digest), 10);
    // Names that share the prefix without being the project's.
    const neighbours = [`${project}x/app`, `${project}-2/app`];
    for (const name of neighbours) await storedBlob(name);
    t.deepEqual(await store().repositories.removeEmpty(project), [emptied]);
    t.is(await store().blobs.find(emptied, link.digest), undefined, 'the link went with it');
    t.false(await store().repositories.exists(emptied));
    t.true(await store().repositories.exists(held));
    t.is(await store().blobs.find(held, blob.digest), 10);
    for (const name of neighbours) t.true(await store().repositories.exists(name), name);
    t.deepEqual(await store().repositories.removeEmpty(project), []);
  });

  test('referrers lists the manifests whose subject is the digest, in that repository', async (t) => {
    const repository = randomRepository();
    const subject = randomManifest();
    await store().manifests.save(repository, subject, [], 'latest');
    const signature = randomManifest({
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      subject: subject.digest,
      annotations: { 'dev.sigstore.cosign/signature': 'MEUCIQ==' },
    });
    const sbom = randomManifest({ mediaType: OCI_INDEX, subject: subject.digest });
    const unrelated = randomManifest({ artifactType: 'x/y', subject: randomDigest() });
    for (const m of [signature, sbom, unrelated]) await store().manifests.save(repository, m, []);
    await store().manifests.save(`${repository}-other`, randomManifest({ subject: subject.digest }), []);

    const byDigest = (list: Referrer[]) => [...list].sort((a, b) => a.digest.localeCompare(b.digest));
    const expected: Referrer[] = [
      {
        digest: signature.digest,
        mediaType: signature.mediaType,
        size: signature.size,
        artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
        annotations: { 'dev.sigstore.cosign/signature': 'MEUCIQ==' },
      },
      { digest: sbom.digest, mediaType: OCI_INDEX, size: sbom.size },
    ];
    const all = { limit: 100, annotationBytes: 1024 };
    const listed = await store().manifests.referrers(repository, subject.digest, all);
    t.deepEqual(listed, { referrers: byDigest(expected) }, 'in digest order, no next page');
    t.deepEqual(await store().manifests.referrers(repository, randomDigest(), all), { referrers: [] });
    t.deepEqual(await store().manifests.referrers(`${repository}-unknown`, subject.digest, all), { referrers: [] });
    const cosign = await store().manifests.referrers(repository, subject.digest, { ...all, artifactType: expected[0]!.artifactType! });
    t.deepEqual(cosign, { referrers: [expected[0]!] }, 'filtered by artifact type');
    const bare = await store().manifests.referrers(repository, subject.digest, { limit: 100 });
    t.deepEqual(
      bare.referrers,
      byDigest(expected).map(({ annotations: _, ...rest }) => rest),
      'without annotations unless asked',
    );

    await store().manifests.remove(repository, signature.digest);
    t.deepEqual(await store().manifests.referrers(repository, subject.digest, all), { referrers: [expected[1]!] });
  });

  test('signedAmong: digests with a cosign referrer or a .sig tag in the repository, no others', async (t) => {
    const repository = randomRepository();
    const COSIGN = 'application/vnd.dev.cosign.artifact.sig.v1+json';
    const [byReferrer, byTag, unsigned, otherType] = [randomManifest(), randomManifest(), randomManifest(), randomManifest()];
    for (const m of [byReferrer, byTag, unsigned, otherType]) await store().manifests.save(repository, m, []);
    await store().manifests.save(repository, randomManifest({ artifactType: COSIGN, subject: byReferrer.digest }), []);
    await store().manifests.save(
      repository,
      randomManifest({ artifactType: 'application/vnd.example.sbom', subject: otherType.digest }),
      [],
    );
    await store().manifests.save(repository, randomManifest(), [], `${byTag.digest.replace(':', '-')}.sig`);
    const all = [byReferrer, byTag, unsigned, otherType].map((m) => m.digest);
    t.deepEqual(
      [...(await store().manifests.signedAmong(repository, [...all, byTag.digest], COSIGN))].sort(),
      [byReferrer.digest, byTag.digest].sort(),
    );
    t.deepEqual([...(await store().manifests.signedAmong(`${repository}-other`, all, COSIGN))], []);
    t.deepEqual([...(await store().manifests.signedAmong(repository, [], COSIGN))], []);
  });

  test('referrers come in pages bounded by count and by bytes of annotations, one referrer at least', async (t) => {
    const repository = randomRepository();
    const subject = randomManifest();
    await store().manifests.save(repository, subject, [], 'latest');
    // Annotations of 0, 300, 600, ... bytes: a page of 1000 bytes holds what fits, in digest order.
    const referrers = Array.from({ length: 7 }, (_, i) =>
      randomManifest({ subject: subject.digest, ...(i > 0 ? { annotations: { a: 'x'.repeat(300 * i) } } : {}) }),
    );
    for (const m of referrers) await store().manifests.save(repository, m, []);
    const sizeOf = new Map(referrers.map((m) => [m.digest, m.annotations ? JSON.stringify(m.annotations).length : 0]));
    const walk = async (page: { limit: number; annotationBytes?: number }) => {
      const pages: string[][] = [];
      let after: string | undefined;
      for (let i = 0; i < 20; i++) {
        const list = await store().manifests.referrers(repository, subject.digest, { ...page, ...(after ? { after } : {}) });
        pages.push(list.referrers.map((r) => r.digest));
        for (const r of list.referrers)
          t.deepEqual(
            r.annotations,
            page.annotationBytes === undefined ? undefined : referrers.find((m) => m.digest === r.digest)!.annotations,
          );
        if (!list.next) return pages;
        t.is(list.next, list.referrers.at(-1)!.digest);
        after = list.next;
      }
      throw new Error('the pages never ended');
    };
    const sorted = referrers.map((m) => m.digest).sort();
    t.deepEqual(await walk({ limit: 3 }), [sorted.slice(0, 3), sorted.slice(3, 6), sorted.slice(6)]);
    const byBytes = await walk({ limit: 100, annotationBytes: 1000 });
    t.deepEqual(byBytes.flat(), sorted, 'every referrer once, in order');
    for (const page of byBytes) {
      const bytes = page.reduce((sum, d) => sum + sizeOf.get(d)!, 0);
      t.true(page.length === 1 || bytes <= 1000, `a page of ${page.length} with ${bytes} bytes of annotations`);
    }
    t.true(byBytes.length >= 3, 'the bytes split the listing');
  });

  // Tags

  test('tags of an unknown repository are undefined; of a repository without tags, empty', async (t) => {
    const repository = randomRepository();
    t.is(await store().tags.list(repository, { limit: 10 }), undefined);
    t.is(await store().tags.listJson(repository, 10), undefined);
    t.is(await store().tags.find(repository, 'latest'), undefined);
    t.is(await store().manifests.findByTag(repository, 'latest'), undefined);
    await store().manifests.save(repository, randomManifest(), []);
    t.deepEqual(await store().tags.list(repository, { limit: 10 }), []);
    t.deepEqual(await store().tags.listJson(repository, 10), { count: 0, json: '[]' });
    t.is(await store().tags.find(repository, 'latest'), undefined);
    t.is(await store().manifests.findByTag(repository, 'latest'), undefined);
    t.false(await store().tags.remove(repository, 'latest'));
  });

  test('a tag outside the tag grammar is never stored: tag lists are JSON joined without escaping', async (t) => {
    const repository = randomRepository();
    const manifest = randomManifest();
    await store().manifests.save(repository, manifest, [], 'v1');
    for (const tag of ['a","b', 'back\\slash', 'line\nbreak', '', '.dot', '-dash', 'x'.repeat(129), 'ünï']) {
      await t.throwsAsync(store().manifests.save(repository, manifest, [], tag), undefined, JSON.stringify(tag));
    }
    t.deepEqual(await store().tags.list(repository, { limit: 100 }), ['v1']);
    t.deepEqual(await store().tags.listJson(repository, 100), { count: 1, json: '["v1"]' });
  });

  test('tags are listed in byte order and paged by last and limit', async (t) => {
    const repository = randomRepository();
    const manifest = randomManifest();
    const tags = ['b', 'a', 'A', 'Z', 'B1', '_x', '0', '9', 'a-b', 'a.b', 'a_b', 'latest', 'v1.10', 'v1.2', 'v1.0'];
    for (const tag of tags) await store().manifests.save(repository, manifest, [], tag);
    await store().manifests.save(`${repository}-other`, manifest, [], 'other-repo');
    const sorted = [...tags].sort(); // code-unit order, which is byte order for ASCII
    t.deepEqual(sorted.slice(0, 9), ['0', '9', 'A', 'B1', 'Z', '_x', 'a', 'a-b', 'a.b']);

    t.deepEqual(await store().tags.list(repository, { limit: 100 }), sorted);
    t.deepEqual(await store().tags.list(repository, { limit: 4 }), sorted.slice(0, 4));
    t.deepEqual(await store().tags.list(repository, { last: 'A', limit: 3 }), ['B1', 'Z', '_x']);
    t.deepEqual(await store().tags.list(repository, { last: 'a', limit: 100 }), sorted.slice(sorted.indexOf('a') + 1));
    t.deepEqual(await store().tags.list(repository, { last: 'a0', limit: 2 }), ['a_b', 'b'], 'last need not exist');
    t.deepEqual(await store().tags.list(repository, { last: 'v1.2', limit: 10 }), []);
    t.deepEqual((await pages((p) => store().tags.list(repository, p), '', 4)).flat(), sorted);
    // As JSON text: the same names in the same order, and one more than `max` when there are more.
    const whole = await store().tags.listJson(repository, 100);
    t.deepEqual(whole && { count: whole.count, names: JSON.parse(whole.json) as unknown }, { count: sorted.length, names: sorted });
    const first = await store().tags.listJson(repository, 3);
    t.deepEqual(first && { count: first.count, names: JSON.parse(first.json) as unknown }, { count: 4, names: sorted.slice(0, 4) });
    // The detailed listing pages the same way, each tag with its digest and push time.
    const detailed = await store().tags.listDetailed(repository, { last: 'A', limit: 3 });
    t.deepEqual(
      detailed?.map((d) => [d.name, d.digest]),
      ['B1', 'Z', '_x'].map((name) => [name, manifest.digest]),
    );
    t.true(detailed?.every((d) => d.updatedAt instanceof Date && Math.abs(d.updatedAt.getTime() - Date.now()) < 60_000));
    t.is(await store().tags.listDetailed(`${repository}-missing`, { limit: 3 }), undefined);
  });

  test('removing a tag leaves its manifest', async (t) => {
    const repository = randomRepository();
    const manifest = randomManifest();
    await store().manifests.save(repository, manifest, [], 'one');
    await store().manifests.save(repository, manifest, [], 'two');
    t.deepEqual(await store().manifests.findByTag(repository, 'one'), manifest);
    t.true(await store().tags.remove(repository, 'one'));
    t.false(await store().tags.remove(repository, 'one'));
    t.is(await store().tags.find(repository, 'one'), undefined);
    t.is(await store().manifests.findByTag(repository, 'one'), undefined);
    t.deepEqual(await store().manifests.findByTag(repository, 'two'), manifest);
    t.is(await store().tags.find(repository, 'two'), manifest.digest);
    t.deepEqual(await store().tags.list(repository, { limit: 10 }), ['two']);
    t.deepEqual(await store().manifests.find(repository, manifest.digest), manifest);
  });

  // Uploads

  test('an upload is created empty and found by id', async (t) => {
    const id = randomUUID();
    const repository = randomRepository();
    t.is(await store().uploads.find(id), undefined);
    const before = Date.now();
    await store().uploads.create(id, repository);
    const upload = await store().uploads.find(id);
    t.like(upload, { id, repository, size: 0, chunks: [] });
    t.true(upload?.createdAt instanceof Date);
    t.true(Math.abs((upload?.createdAt.getTime() ?? 0) - before) < 60_000);
    t.is(await store().uploads.find(randomUUID()), undefined);
  });

  test('chunks are appended only at the upload’s current size', async (t) => {
    const id = randomUUID();
    await store().uploads.create(id, randomRepository());
    const chunk = (offset: number, size: number) => ({ offset, size, key: uploadChunkKey(id, offset) });
    const first = chunk(0, 100);
    const second = chunk(100, 5_000_000_000);
    t.true(await store().uploads.addChunk(id, first));
    t.false(await store().uploads.addChunk(id, chunk(0, 100)), 'a second chunk at a stale offset loses');
    t.false(await store().uploads.addChunk(id, chunk(0, 7)), 'whatever its size');
    t.false(await store().uploads.addChunk(id, chunk(150, 10)), 'a chunk beyond the end is refused too');
    t.true(await store().uploads.addChunk(id, second));
    t.false(await store().uploads.addChunk(id, chunk(100, 1)));
    const upload = await store().uploads.find(id);
    t.is(upload?.size, 5_000_000_100);
    t.deepEqual(upload?.chunks, [first, second]);
    t.false(await store().uploads.addChunk(randomUUID(), chunk(0, 1)), 'an unknown upload takes no chunk');
  });

  test('of concurrent chunks at the same offset exactly one is recorded', async (t) => {
    const id = randomUUID();
    await store().uploads.create(id, randomRepository());
    const rivals = Array.from({ length: 8 }, (_, i) => ({ offset: 0, size: 10 + i, key: uploadChunkKey(id, 0) }));
    const results = await Promise.all(rivals.map((chunk) => store().uploads.addChunk(id, chunk)));
    t.is(results.filter(Boolean).length, 1);
    const winner = rivals[results.indexOf(true)]!;
    const upload = await store().uploads.find(id);
    t.deepEqual(upload?.chunks, [winner]);
    t.is(upload?.size, winner.size);
  });

  test('claiming an upload returns it with its chunks and leaves it in place, marked as used', async (t) => {
    const id = randomUUID();
    const repository = randomRepository();
    await store().uploads.create(id, repository);
    const chunks = [
      { offset: 0, size: 10, key: uploadChunkKey(id, 0) },
      { offset: 10, size: 5, key: uploadChunkKey(id, 10) },
    ];
    for (const chunk of chunks) t.true(await store().uploads.addChunk(id, chunk));
    t.is(await store().uploads.claim(id, `${repository}-other`), undefined, 'not an upload of another repository');
    t.is(await store().uploads.claim(randomUUID(), repository), undefined, 'no such upload');
    const claimed = await store().uploads.claim(id, repository);
    t.is(claimed?.size, 15);
    t.is(claimed?.repository, repository);
    t.deepEqual(claimed?.chunks, chunks);
    // A claim is no end: the commit it serves may be cut off, and asked again.
    t.deepEqual((await store().uploads.claim(id, repository))?.chunks, chunks, 'a second claim finds it again');
    t.deepEqual((await store().uploads.find(id))?.chunks, chunks);
    t.true(await store().uploads.remove(id));
  });

  test('linking a blob ends its upload in the same step; a failed placement ends nothing', async (t) => {
    const id = randomUUID();
    const repository = randomRepository();
    await store().uploads.create(id, repository);
    t.true(await store().uploads.addChunk(id, { offset: 0, size: 3, key: uploadChunkKey(id, 0) }));
    const failing = randomDigest();
    await t.throwsAsync(
      store().blobs.save(repository, failing, 3, {
        endUpload: id,
        place: async () => {
          throw new Error('placement failed');
        },
      }),
      { message: 'placement failed' },
    );
    t.truthy(await store().uploads.find(id), 'the upload outlives a failed link');
    t.is(await store().blobs.find(repository, failing), undefined);

    const digest = randomDigest();
    let placed = false;
    await store().blobs.save(repository, digest, 3, { endUpload: id, place: async () => void (placed = true) });
    t.true(placed);
    t.is(await store().blobs.find(repository, digest), 3);
    t.is(await store().uploads.find(id), undefined, 'the upload ended with the link');
    // Linking the same blob again, by a commit that raced this one (a retried PUT), finds no
    // upload to end and still links; another blob of the ended session is not linked.
    await store().blobs.save(repository, digest, 3, { endUpload: id });
    t.is(await store().blobs.find(repository, digest), 3);
    const other = randomDigest();
    await t.throwsAsync(store().blobs.save(repository, other, 3, { endUpload: id }), { name: 'UploadEndedError' });
    t.is(await store().blobs.find(repository, other), undefined);
  });

  test("while a blob's bytes are placed only its own digest waits: other statements and other digests' pushes go on", async (t) => {
    // Placing ends with an fsync, which a slow or busy disk stretches: one push must not stall the
    // registry's other requests meanwhile, while a second link of the same digest (and so a
    // collection of it) must wait until the first is placed and linked.
    const repository = randomRepository();
    const [held, other] = [randomDigest(), randomDigest()];
    // An existing repository: the first link into a new one creates its row, which a concurrent
    // first link into the same new repository must wait for on a PostgreSQL server.
    await store().blobs.save(repository, randomDigest(), 1);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let placing!: () => void;
    const started = new Promise<void>((resolve) => (placing = resolve));
    const first = store().blobs.save(repository, held, 7, {
      place: async () => {
        placing();
        await gate;
      },
    });
    try {
      await started;
      const meanwhile = (async () => {
        await store().blobs.save(repository, other, 8, { place: async () => undefined });
        return store().blobs.find(repository, other);
      })();
      t.is(await withinSeconds(10, meanwhile), 8, "another digest's push completes while the first is placed");
      t.is(await withinSeconds(10, store().tags.find(repository, 'latest')), undefined, 'reads are answered meanwhile');
      let secondPlaced = false;
      const second = store().blobs.save(`${repository}-2`, held, 7, { place: async () => void (secondPlaced = true) });
      await new Promise((resolve) => setTimeout(resolve, 200));
      t.false(secondPlaced, 'the same digest waits for the first placement');
      release();
      await first;
      await second;
      t.true(secondPlaced);
      t.is(await store().blobs.find(repository, held), 7);
      t.is(await store().blobs.find(`${repository}-2`, held), 7);
    } finally {
      release();
      await first.catch(() => undefined);
    }
  });

  test('removing an upload removes its chunks', async (t) => {
    const id = randomUUID();
    const repository = randomRepository();
    const other = randomUUID();
    await store().uploads.create(id, repository);
    await store().uploads.create(other, repository);
    await store().uploads.addChunk(id, { offset: 0, size: 10, key: uploadChunkKey(id, 0) });
    await store().uploads.addChunk(id, { offset: 10, size: 10, key: uploadChunkKey(id, 10) });
    await store().uploads.addChunk(other, { offset: 0, size: 3, key: uploadChunkKey(other, 0) });
    t.true(await store().uploads.remove(id));
    t.is(await store().uploads.find(id), undefined);
    t.false(await store().uploads.remove(id));
    t.false(await store().uploads.addChunk(id, { offset: 20, size: 1, key: uploadChunkKey(id, 20) }));
    // The same id again starts from nothing: no chunk of the old session survives.
    await store().uploads.create(id, repository);
    t.like(await store().uploads.find(id), { size: 0, chunks: [] });
    t.is((await store().uploads.find(other))?.chunks.length, 1, 'other uploads keep their chunks');
    await store().uploads.remove(id);
    await store().uploads.remove(other);
  });
}
