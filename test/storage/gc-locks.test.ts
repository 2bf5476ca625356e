// A push and a collection of the same digest at the same moment, on both databases: the collector
// must wait while the push has placed the bytes but not yet linked them (or has found the bytes
// already there and is about to link them again), and never leave a link whose bytes it deleted.
// (With no grace at all a collection may still take the blob, row and bytes together, once the
// push is done: on PostgreSQL the link's time is its transaction's start, before the collection.)
// On PGlite the digest's lock lives in this process (storage/locks.ts); these tests are what
// forgetting to take it in collection, or taking it in the wrong order, would break.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import { createBlobs, type Blobs } from '../../storage/blobs.js';
import { createPgliteDb, createPostgresDb, type Db } from '../../storage/db.js';
import { digestOf, parseDigest, type ParsedDigest } from '../../storage/digest.js';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { createGarbageCollector, type GcOptions } from '../../storage/gc.js';
import { ManifestReferenceError } from '../../storage/errors.js';
import { lockedTransaction } from '../../storage/locks.js';
import type { ManifestRecord, MetadataStore } from '../../storage/metadata-store.js';
import { migrate } from '../../storage/migrate.js';
import { blobKey } from '../../storage/paths.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { testWithCommands } from '../helpers/env.js';
import { seedEmbeddedDatabase } from '../helpers/pglite-template.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { sleep } from '../helpers/wait.js';

interface Fixture {
  db: Db;
  blobs: Blobs;
  metadata: MetadataStore;
  root: string;
  collect(): Promise<unknown>;
}

const COLLECT_NOW: GcOptions = { graceMs: 0, uploadAgeMs: 3_600_000, debrisAgeMs: 3_600_000, deleteUntagged: false, dryRun: false };
const AN_HOUR_AGO = new Date(Date.now() - 3_600_000);

async function fixture(t: ExecutionContext, kind: Db['kind']): Promise<Fixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-gc-locks-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let db: Db;
  if (kind === 'pglite') {
    const dataDirectory = path.join(dir, 'database');
    await seedEmbeddedDatabase({ REGISTRY_DATABASE_DATADIRECTORY: dataDirectory });
    db = await createPgliteDb(dataDirectory);
  } else {
    const database = await createTestDatabase();
    t.teardown(() => database.drop());
    db = await createPostgresDb(database.url);
  }
  t.teardown(() => db.close());
  await migrate(db);
  const root = path.join(dir, 'storage');
  const store = createFilesystemBlobStore({ rootDirectory: root });
  const blobs = createBlobs(store);
  const collector = createGarbageCollector({ db, store, blobs });
  return { db, blobs, metadata: createPostgresMetadataStore(db), root, collect: () => collector.run(COLLECT_NOW) };
}

/** Starts pushing `data` and stops once its bytes are placed, before they are linked. */
async function pushHeldBeforeLink(
  f: Fixture,
  repository: string,
  data: Buffer,
): Promise<{ digest: ParsedDigest; finish(): Promise<void> }> {
  const digest = parseDigest(digestOf('sha256', data))!;
  const id = randomUUID();
  await f.metadata.uploads.create(id, repository);
  const chunk = await f.blobs.writeChunk(id, 0, Readable.from([data]));
  await f.metadata.uploads.addChunk(id, chunk);
  f.blobs.chunkRecorded(id, chunk);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let placed!: () => void;
  const held = new Promise<void>((resolve) => (placed = resolve));
  const committing = f.blobs.commit(id, [chunk], digest, {
    link: (place) =>
      f.metadata.blobs.save(repository, digest.digest, data.length, {
        endUpload: id,
        place: async () => {
          await place();
          // Old enough for every rule of the collection: only the lock keeps it.
          const file = path.join(f.root, ...blobKey(digest).split('/'));
          await utimes(file, AN_HOUR_AGO, AN_HOUR_AGO);
          placed();
          await gate;
        },
      }),
  });
  committing.catch(() => undefined);
  await held;
  return {
    digest,
    async finish() {
      release();
      await committing;
    },
  };
}

/** A blob pushed, linked long ago and referenced by nothing: what the collection takes. */
async function pushedLongAgo(f: Fixture, repository: string, data: Buffer): Promise<{ digest: ParsedDigest }> {
  const push = await pushHeldBeforeLink(f, repository, data);
  await push.finish();
  await f.db.query('UPDATE blobs SET created_at = $1', [AN_HOUR_AGO]);
  await f.db.query('UPDATE repository_blobs SET linked_at = $1', [AN_HOUR_AGO]);
  return push;
}

/** A link the collection left has its bytes; a collection that took the blob took both. */
async function assertLinkedOnlyWithBytes(
  t: ExecutionContext,
  f: Fixture,
  repository: string,
  digest: ParsedDigest,
  size: number,
): Promise<void> {
  const linked = await f.metadata.blobs.find(repository, digest.digest);
  const stored = await f.blobs.stat(digest);
  if (linked === undefined) {
    t.is(stored, undefined, 'the collection took the blob: its bytes went with its row');
  } else {
    t.is(linked, size);
    t.is(stored?.size, size, 'the linked bytes are still stored');
  }
}

/** Runs a collection while `push` is held: it must wait for the push, then leave no link without bytes. */
async function collectWhileHeld(
  t: ExecutionContext,
  f: Fixture,
  repository: string,
  data: Buffer,
  push: { digest: ParsedDigest; finish(): Promise<void> },
): Promise<void> {
  let collected = false;
  const collecting = f.collect().then(() => (collected = true));
  await sleep(300);
  t.false(collected, "the collection waits for the digest's push");
  await push.finish();
  await collecting;
  await assertLinkedOnlyWithBytes(t, f, repository, push.digest, data.length);
}

for (const kind of ['pglite', 'postgres'] as const) {
  // PostgreSQL's half is skipped with a message when no server answers (failing under SIGNET_TEST_REQUIRE_ALL=1).
  const maybe = kind === 'postgres' ? testWithCommands('collection locks on PostgreSQL', [], { postgres: true }) : test;

  maybe(`${kind}: a collection waits for a push that placed its bytes, and never leaves its link without them`, async (t) => {
    const f = await fixture(t, kind);
    const data = randomBytes(4096);
    // The bytes have no row yet: an orphan to a collector that does not wait for the digest.
    await collectWhileHeld(t, f, 'gc/locks', data, await pushHeldBeforeLink(f, 'gc/locks', data));
  });

  maybe(
    `${kind}: a collection of an unreferenced blob waits for a push linking it again, and never leaves that link without its bytes`,
    async (t) => {
      const f = await fixture(t, kind);
      const data = randomBytes(4096);
      await pushedLongAgo(f, 'gc/relink', data);
      // The same bytes pushed again: placing finds them stored and the push is held before its link.
      await collectWhileHeld(t, f, 'gc/relink', data, await pushHeldBeforeLink(f, 'gc/relink', data));
    },
  );
}

/** A manifest record of `content` (JSON text), as a push stores it. */
function manifestOf(content: object, mediaType = 'application/vnd.oci.image.manifest.v1+json'): ManifestRecord {
  const bytes = Buffer.from(JSON.stringify(content));
  return { digest: digestOf('sha256', bytes), mediaType, content: bytes, size: bytes.length };
}

/** Index children the database lists that it does not hold: what a client pulling the index would find missing. */
async function danglingChildren(db: Db): Promise<string[]> {
  const rows = await db.query<{ child_digest: string }>(
    `SELECT r.child_digest FROM manifest_references r
     WHERE r.child_kind = 'manifest'
       AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.repository_id AND m.digest = r.child_digest)`,
  );
  return rows.map((r) => r.child_digest);
}

for (const kind of ['pglite', 'postgres'] as const) {
  const maybe = kind === 'postgres' ? testWithCommands('collection locks on PostgreSQL', [], { postgres: true }) : test;

  maybe(`${kind}: an index saved while a collection deletes its untagged platform manifest is refused, never saved dangling`, async (t) => {
    const f = await fixture(t, kind);
    const child = manifestOf({ schemaVersion: 2, config: {}, layers: [], annotations: { n: randomUUID() } });
    await f.metadata.manifests.save('gc/index', child, [], undefined, { blobsPending: true });
    const [{ id } = { id: 0 }] = await f.db.query<{ id: number }>(`SELECT id FROM repositories WHERE name = 'gc/index'`);
    // A collection of the untagged child, as storage/gc.ts does it: under the child's lock, a
    // delete that checks nothing lists it; held open before its commit.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let deleted!: () => void;
    const deleting = new Promise<void>((resolve) => (deleted = resolve));
    const collecting = lockedTransaction(f.db, `manifest:${id}:${child.digest}`, async (tx) => {
      await tx.query(
        `DELETE FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2
         AND NOT EXISTS (SELECT 1 FROM manifest_references r
                         WHERE r.repository_id = m.repository_id AND r.child_digest = m.digest AND r.child_kind = 'manifest')`,
        [id, child.digest],
      );
      deleted();
      await gate;
    });
    await deleting;
    const index = manifestOf(
      { schemaVersion: 2, manifests: [{ mediaType: child.mediaType, digest: child.digest, size: child.size }] },
      'application/vnd.oci.image.index.v1+json',
    );
    let settled = false;
    const saving = f.metadata.manifests.save('gc/index', index, [{ digest: child.digest, kind: 'manifest', size: child.size }], 'v1');
    saving.then(
      () => (settled = true),
      () => (settled = true),
    );
    await sleep(300);
    t.false(settled, "the save waits for the collection holding its child's lock");
    release();
    await collecting;
    await t.throwsAsync(saving, { instanceOf: ManifestReferenceError }, 'the child is gone: the index is refused');
    t.deepEqual(await danglingChildren(f.db), []);
    t.is(await f.metadata.manifests.find('gc/index', index.digest), undefined);
  });

  maybe(`${kind}: a collection whose commit fails keeps the blob's bytes with its rows`, async (t) => {
    const f = await fixture(t, kind);
    const data = randomBytes(4096);
    const push = await pushedLongAgo(f, 'gc/commit', data);
    // The database loses the collection's transaction at COMMIT (a failover, the connection
    // dropped): everything it did is rolled back.
    let failCommit = true;
    const failing: Db = {
      ...f.db,
      connections: f.db.connections,
      transaction: (fn) =>
        f.db.transaction(async (tx) => {
          const result = await fn(tx);
          if (failCommit) {
            failCommit = false;
            throw new Error('connection lost at COMMIT');
          }
          return result;
        }),
    };
    const collector = createGarbageCollector({ db: failing, store: createFilesystemBlobStore({ rootDirectory: f.root }), blobs: f.blobs });
    await collector.run(COLLECT_NOW).catch(() => undefined);
    t.is(await f.metadata.blobs.find('gc/commit', push.digest.digest), data.length, 'the rows are back');
    t.is((await f.blobs.stat(push.digest))?.size, data.length, 'and so are the bytes: a HEAD of 200 is a blob that can be read');
    // The next collection takes both.
    await collector.run(COLLECT_NOW);
    t.is(await f.metadata.blobs.find('gc/commit', push.digest.digest), undefined);
    t.is(await f.blobs.stat(push.digest), undefined);
  });

  maybe(`${kind}: a manifest pushed again is young again: its grace window counts from the last push`, async (t) => {
    const f = await fixture(t, kind);
    const child = manifestOf({ schemaVersion: 2, config: {}, layers: [], annotations: { n: randomUUID() } });
    await f.metadata.manifests.save('gc/again', child, [], undefined, { blobsPending: true });
    await f.db.query('UPDATE manifests SET created_at = $1, pushed_at = $1', [AN_HOUR_AGO]);
    // Pushed again by digest (docker buildx and skopeo copy --all push the platform manifests,
    // then the index), then collected with ten minutes of grace before the index arrives.
    await f.metadata.manifests.save('gc/again', child, [], undefined, { blobsPending: true });
    const collector = createGarbageCollector({ db: f.db, store: createFilesystemBlobStore({ rootDirectory: f.root }), blobs: f.blobs });
    await collector.run({ ...COLLECT_NOW, graceMs: 600_000, deleteUntagged: true });
    t.truthy(await f.metadata.manifests.find('gc/again', child.digest), 'kept: pushed seconds ago');
  });
}
