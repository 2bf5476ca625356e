// The content-addressed layer's suite: uploads as chunk objects, committed only when the content
// hashes to the digest the client claimed. Every BlobStore runs it under createBlobs from its own
// *.test.ts file (test/storage/blobs.test.ts on the filesystem, blobs-s3.test.ts on S3).
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import type { ExecutionContext, TestFn } from 'ava';
import fc from 'fast-check';
import { hasInPlaceAppends, type BlobStore } from '../../storage/blob-store.js';
import { createBlobs, type Blobs, type UploadChunk } from '../../storage/blobs.js';
import { digestOf, parseDigest, type DigestAlgorithm, type ParsedDigest } from '../../storage/digest.js';
import { DigestMismatchError, SizeMismatchError, StorageNotFoundError } from '../../storage/errors.js';
import { uploadIdOfKey, uploadListPrefix, uploadPrefix } from '../../storage/paths.js';
import { failingStream, listAll, readAll, streamOf, type BlobStoreFixture } from './blob-store.js';

const KiB = 1024;

export function digest(data: Buffer, algorithm: DigestAlgorithm = 'sha256'): ParsedDigest {
  return parseDigest(digestOf(algorithm, data))!;
}

/** A fresh upload id; the upload and every blob the test names are removed when it ends. */
export function upload(t: ExecutionContext, blobs: Blobs, ...digests: ParsedDigest[]): string {
  const id = randomUUID();
  t.teardown(async () => {
    await blobs.removeUpload(id);
    for (const d of digests) await blobs.delete(d);
  });
  return id;
}

/** Writes the parts as chunks one after another, each recorded as the upload handler does. */
export async function writeChunks(blobs: Blobs, id: string, parts: Buffer[], from = 0): Promise<UploadChunk[]> {
  const chunks: UploadChunk[] = [];
  let offset = from;
  for (const part of parts) {
    const chunk = await blobs.writeChunk(id, offset, streamOf(part, 7 * KiB));
    blobs.chunkRecorded(id, chunk);
    chunks.push(chunk);
    offset += chunk.size;
  }
  return chunks;
}

export async function assertBlob(t: ExecutionContext, blobs: Blobs, d: ParsedDigest, data: Buffer): Promise<void> {
  t.is((await blobs.stat(d))?.size, data.length, `size of ${d.digest}`);
  t.true((await readAll(await blobs.open(d))).equals(data), `content of ${d.digest}`);
}

export async function assertAbsent(t: ExecutionContext, blobs: Blobs, ...digests: ParsedDigest[]): Promise<void> {
  for (const d of digests) {
    t.is(await blobs.stat(d), undefined, `${d.digest} must not exist`);
    await t.throwsAsync(blobs.open(d), { instanceOf: StorageNotFoundError });
  }
}

export function blobsConformance(test: TestFn, makeStore: () => Promise<BlobStoreFixture>): void {
  let fixture: BlobStoreFixture | undefined;

  test.before(async () => {
    fixture = await makeStore();
  });
  test.after('nothing is left in the store', async (t) => {
    t.deepEqual(await listAll(store(), ''), []);
  });
  test.after.always(async () => {
    await fixture?.cleanup();
  });

  function store(): BlobStore {
    if (!fixture) throw new Error('blob store fixture not ready');
    return fixture.store;
  }

  async function uploadObjects(id: string): Promise<string[]> {
    return listAll(store(), uploadListPrefix(id));
  }

  test('a single-chunk upload committed with its digest becomes readable at that digest', async (t) => {
    const blobs = createBlobs(store());
    const data = randomBytes(100 * KiB + 5);
    const d = digest(data);
    const id = upload(t, blobs, d);
    const [chunk] = await writeChunks(blobs, id, [data]);
    t.deepEqual({ offset: chunk!.offset, size: chunk!.size }, { offset: 0, size: data.length });
    await assertAbsent(t, blobs, d);

    t.deepEqual(await blobs.commit(id, [chunk!], d, { expectedSize: data.length }), { digest: d.digest, size: data.length });
    await assertBlob(t, blobs, d, data);
    t.true((await readAll(await blobs.open(d, { start: 10, end: 19 }))).equals(data.subarray(10, 20)));
    t.deepEqual(await uploadObjects(id), [], 'the upload is gone once committed');
  });

  test('writeChunk tells the sha256 of the upload so far once it hashed the last byte, before it returns', async (t) => {
    const blobs = createBlobs(store());
    const parts = [randomBytes(40 * KiB), randomBytes(9 * KiB)];
    const id = upload(t, blobs);
    const told: string[] = [];
    const first = await blobs.writeChunk(id, 0, streamOf(parts[0]!, 7 * KiB), { onHashed: (d) => told.push(d) });
    t.deepEqual(told, [digest(parts[0]!).digest]);
    await blobs.writeChunk(id, first.size, streamOf(parts[1]!, 7 * KiB), { onHashed: (d) => told.push(d) });
    t.deepEqual(told, [digest(parts[0]!).digest, digest(Buffer.concat(parts)).digest], 'the running hash, across chunks');
  });

  test("a chunk past its limit fails with the limit's error, keeps nothing of itself, and the upload goes on", async (t) => {
    const blobs = createBlobs(store());
    const first = randomBytes(40 * KiB);
    const next = randomBytes(9 * KiB);
    const data = Buffer.concat([first, next]);
    const d = digest(data);
    const id = upload(t, blobs, d);
    class OverLimit extends Error {}
    const limit = (bytes: number) => ({ bytes, error: () => new OverLimit(`more than ${bytes} bytes`) });
    // A first chunk (its own object), then one onto its end where the store appends.
    await t.throwsAsync(blobs.writeChunk(id, 0, streamOf(first, 7 * KiB), { limit: limit(first.length - 1) }), {
      instanceOf: OverLimit,
    });
    t.deepEqual(await uploadObjects(id), [], 'nothing of the refused first chunk is kept');
    const chunk = await blobs.writeChunk(id, 0, streamOf(first, 7 * KiB), { limit: limit(first.length) });
    blobs.chunkRecorded(id, chunk);
    await t.throwsAsync(blobs.writeChunk(id, first.length, streamOf(next, 7 * KiB), { limit: limit(8 * KiB) }), {
      instanceOf: OverLimit,
    });
    const last = await blobs.writeChunk(id, first.length, streamOf(next, 7 * KiB), { limit: limit(next.length) });
    t.deepEqual(await blobs.commit(id, [chunk, last], d, { expectedSize: data.length }), { digest: d.digest, size: data.length });
    await assertBlob(t, blobs, d, data);
  });

  test('a wrong digest is rejected and no blob appears at either digest', async (t) => {
    const blobs = createBlobs(store());
    const data = randomBytes(10 * KiB);
    const claimed = digest(randomBytes(10 * KiB));
    const actual = digest(data);
    const id = upload(t, blobs, claimed, actual);
    const chunks = await writeChunks(blobs, id, [data]);

    const err = await t.throwsAsync(blobs.commit(id, chunks, claimed), { instanceOf: DigestMismatchError });
    t.is(err?.expected, claimed.digest);
    t.is(err?.actual, actual.digest);
    await assertAbsent(t, blobs, claimed, actual);
  });

  test('a multi-chunk upload commits the chunks joined in order', async (t) => {
    const blobs = createBlobs(store());
    const parts = [randomBytes(64 * KiB), randomBytes(1), randomBytes(300 * KiB + 3)];
    const data = Buffer.concat(parts);
    const d = digest(data);
    const id = upload(t, blobs, d);
    const chunks = await writeChunks(blobs, id, parts);
    t.deepEqual(
      chunks.map((c) => [c.offset, c.size]),
      [
        [0, 64 * KiB],
        [64 * KiB, 1],
        [64 * KiB + 1, 300 * KiB + 3],
      ],
    );
    // Where the store appends in place, the recorded chunks grew one object.
    t.is((await uploadObjects(id)).length, hasInPlaceAppends(store()) ? 1 : 3);

    const wrong = digest(Buffer.concat([parts[1]!, parts[0]!, parts[2]!]));
    await t.throwsAsync(blobs.commit(id, chunks, wrong), { instanceOf: DigestMismatchError });
    await assertAbsent(t, blobs, wrong, d);

    t.deepEqual(await blobs.commit(id, chunks, d), { digest: d.digest, size: data.length });
    await assertBlob(t, blobs, d, data);
    t.deepEqual(await uploadObjects(id), []);
  });

  for (const parts of [1, 3]) {
    test(`after a restart a new instance verifies ${parts} chunk(s) written by another, reading them back`, async (t) => {
      const writer = createBlobs(store());
      const pieces = Array.from({ length: parts }, (_, i) => randomBytes(50 * KiB + i));
      const data = Buffer.concat(pieces);
      const d = digest(data);
      const wrong = digest(randomBytes(8));
      const id = upload(t, writer, d, wrong);
      const chunks = await writeChunks(writer, id, pieces);
      const chunkKeys = (await uploadObjects(id)).sort();

      const restarted = createBlobs(store());
      await t.throwsAsync(restarted.commit(id, chunks, wrong), { instanceOf: DigestMismatchError });
      await assertAbsent(t, restarted, wrong, d);
      t.deepEqual(await uploadObjects(id), chunkKeys, 'a rejected commit leaves only the chunks (no joined copy)');

      t.deepEqual(await restarted.commit(id, chunks, d), { digest: d.digest, size: data.length });
      await assertBlob(t, restarted, d, data);
      await assertBlob(t, writer, d, data);
      t.deepEqual(await uploadObjects(id), []);
    });
  }

  test('chunks written by two instances in turn commit on either', async (t) => {
    const a = createBlobs(store());
    const b = createBlobs(store());
    const pieces = [randomBytes(3 * KiB), randomBytes(5 * KiB), randomBytes(7 * KiB)];
    const data = Buffer.concat(pieces);
    const d = digest(data);
    const id = upload(t, a, d);
    const chunks = [
      ...(await writeChunks(a, id, [pieces[0]!])),
      ...(await writeChunks(b, id, [pieces[1]!], 3 * KiB)),
      ...(await writeChunks(a, id, [pieces[2]!], 8 * KiB)),
    ];
    // `a` holds a running hash of its first chunk only: it must not take it for the whole upload.
    await t.throwsAsync(a.commit(id, chunks, digest(pieces[0]!)), { instanceOf: DigestMismatchError });
    await t.throwsAsync(a.commit(id, chunks, digest(Buffer.concat([pieces[0]!, pieces[2]!]))), {
      instanceOf: DigestMismatchError,
    });
    t.deepEqual(await a.commit(id, chunks, d), { digest: d.digest, size: data.length });
    await assertBlob(t, b, d, data);
  });

  for (const parts of [1, 3]) {
    test(`sha512 digests are verified (${parts} chunk(s))`, async (t) => {
      const blobs = createBlobs(store());
      const pieces = Array.from({ length: parts }, () => randomBytes(20 * KiB));
      const data = Buffer.concat(pieces);
      const d = digest(data, 'sha512');
      const sha256 = digest(data, 'sha256');
      const wrong = digest(randomBytes(20), 'sha512');
      const id = upload(t, blobs, d, sha256, wrong);
      const chunks = await writeChunks(blobs, id, pieces);

      await t.throwsAsync(blobs.commit(id, chunks, wrong), { instanceOf: DigestMismatchError });
      await assertAbsent(t, blobs, wrong, d, sha256);
      t.deepEqual(await blobs.commit(id, chunks, d), { digest: d.digest, size: data.length });
      t.regex(d.digest, /^sha512:[0-9a-f]{128}$/);
      await assertBlob(t, blobs, d, data);
      await assertAbsent(t, blobs, sha256);
    });
  }

  for (const algorithm of ['sha256', 'sha512'] as const) {
    test(`a zero-length blob (${algorithm}) commits from an upload without chunks`, async (t) => {
      const blobs = createBlobs(store());
      const empty = Buffer.alloc(0);
      const d = digest(empty, algorithm);
      const wrong = digest(Buffer.from('x'), algorithm);
      const id = upload(t, blobs, d, wrong);
      const chunk = await blobs.writeChunk(id, 0, streamOf(empty));
      t.is(chunk.size, 0);
      t.deepEqual(await uploadObjects(id), [], 'an empty chunk leaves no object');

      await t.throwsAsync(blobs.commit(id, [], wrong), { instanceOf: DigestMismatchError });
      await assertAbsent(t, blobs, wrong, d);
      t.deepEqual(await blobs.commit(id, [], d, { expectedSize: 0 }), { digest: d.digest, size: 0 });
      await assertBlob(t, blobs, d, empty);
    });
  }

  test('an upload committed again for a blob already stored with the same content succeeds', async (t) => {
    const blobs = createBlobs(store());
    const data = randomBytes(40 * KiB);
    const d = digest(data);
    const first = upload(t, blobs, d);
    await blobs.commit(first, await writeChunks(blobs, first, [data]), d);
    for (const instance of [blobs, createBlobs(store())]) {
      const again = upload(t, blobs);
      const chunks = await writeChunks(blobs, again, [data.subarray(0, 1000), data.subarray(1000)]);
      t.deepEqual(await instance.commit(again, chunks, d), { digest: d.digest, size: data.length });
      t.deepEqual(await uploadObjects(again), []);
    }
    await assertBlob(t, blobs, d, data);
  });

  // A client must not be able to link an existing blob into its repository by claiming its digest
  // for other content, whichever path the commit takes.
  const claimPaths: Array<[string, number, boolean]> = [
    ['running hash, one chunk', 1, false],
    ['running hash, three chunks', 3, false],
    ['after a restart, one chunk', 1, true],
    ['after a restart, three chunks', 3, true],
  ];
  for (const [label, parts, restart] of claimPaths) {
    test(`claiming the digest of a stored blob for other content is rejected (${label})`, async (t) => {
      const blobs = createBlobs(store());
      const stored = randomBytes(30 * KiB);
      const d = digest(stored);
      const first = upload(t, blobs, d);
      await blobs.commit(first, await writeChunks(blobs, first, [stored]), d);

      const other = randomBytes(30 * KiB);
      const id = upload(t, blobs, digest(other));
      const pieces = parts === 1 ? [other] : [other.subarray(0, 10), other.subarray(10, 20_000), other.subarray(20_000)];
      const chunks = await writeChunks(blobs, id, pieces);
      const committer = restart ? createBlobs(store()) : blobs;
      await t.throwsAsync(committer.commit(id, chunks, d), { instanceOf: DigestMismatchError });
      await assertBlob(t, blobs, d, stored);
      await assertAbsent(t, blobs, digest(other));
    });
  }

  test('a running hash covers only the chunks it hashed: a discarded rival chunk is never trusted', async (t) => {
    const blobs = createBlobs(store());
    const kept = randomBytes(16 * KiB);
    const rival = randomBytes(16 * KiB);
    const id = upload(t, blobs, digest(kept), digest(rival));
    // Two requests race to write at offset 0; the metadata store records `kept`, `rival` loses.
    const [keptChunk] = await writeChunks(blobs, id, [kept]);
    const [rivalChunk] = await writeChunks(blobs, id, [rival]);

    // A commit can run before the loser is discarded: it must not verify `kept` by `rival`'s hash,
    // nor an upload with no chunks recorded (yet) by it.
    await t.throwsAsync(blobs.commit(id, [keptChunk!], digest(rival)), { instanceOf: DigestMismatchError });
    await t.throwsAsync(blobs.commit(id, [], digest(rival)), { instanceOf: DigestMismatchError });
    await assertAbsent(t, blobs, digest(rival), digest(kept));

    await blobs.discardChunk(id, rivalChunk!);
    t.deepEqual(await uploadObjects(id), [keptChunk!.key]);
    await t.throwsAsync(blobs.commit(id, [keptChunk!], digest(rival)), { instanceOf: DigestMismatchError });
    t.deepEqual(await blobs.commit(id, [keptChunk!], digest(kept)), { digest: digest(kept).digest, size: kept.length });
    await assertBlob(t, blobs, digest(kept), kept);
    await assertAbsent(t, blobs, digest(rival));
  });

  test('a chunk whose body fails leaves no object and does not advance the running hash', async (t) => {
    const blobs = createBlobs(store());
    const first = randomBytes(8 * KiB);
    const second = randomBytes(8 * KiB);
    const data = Buffer.concat([first, second]);
    const id = upload(t, blobs, digest(data));
    const chunks = await writeChunks(blobs, id, [first]);
    await t.throwsAsync(blobs.writeChunk(id, first.length, failingStream(randomBytes(200 * KiB))), {
      message: /reset by test/,
    });
    t.deepEqual(await uploadObjects(id), [chunks[0]!.key]);
    chunks.push(...(await writeChunks(blobs, id, [second], first.length)));
    t.deepEqual(await blobs.commit(id, chunks, digest(data)), { digest: digest(data).digest, size: data.length });
    await assertBlob(t, blobs, digest(data), data);
  });

  test('commit checks the declared size and refuses gaps between chunks', async (t) => {
    const blobs = createBlobs(store());
    const parts = [randomBytes(KiB), randomBytes(KiB), randomBytes(KiB)];
    const d = digest(Buffer.concat(parts));
    const id = upload(t, blobs, d);
    const chunks = await writeChunks(blobs, id, parts);
    const err = await t.throwsAsync(blobs.commit(id, chunks, d, { expectedSize: 3 * KiB + 1 }), { instanceOf: SizeMismatchError });
    t.is(err?.expected, 3 * KiB + 1);
    t.is(err?.actual, 3 * KiB);
    await t.throwsAsync(blobs.commit(id, [chunks[0]!, chunks[2]!], d), { message: /gap/ });
    await assertAbsent(t, blobs, d);
    t.is((await uploadObjects(id)).length, hasInPlaceAppends(store()) ? 1 : 3);
  });

  test('removeUpload removes every object of the upload and nothing else', async (t) => {
    const blobs = createBlobs(store());
    const id = upload(t, blobs);
    const other = upload(t, blobs);
    await writeChunks(blobs, id, [randomBytes(KiB), randomBytes(2 * KiB), randomBytes(3 * KiB)]);
    const [otherChunk] = await writeChunks(blobs, other, [randomBytes(KiB)]);
    // A rival chunk (not yet discarded) and a leftover joined copy are objects of the upload too.
    await writeChunks(blobs, id, [randomBytes(KiB)]);
    await store().write(`${uploadPrefix(id)}assembled-0123456789ab`, streamOf(randomBytes(KiB)));
    t.is((await uploadObjects(id)).length, hasInPlaceAppends(store()) ? 3 : 5);

    await blobs.removeUpload(id);
    t.deepEqual(await uploadObjects(id), []);
    t.deepEqual(await uploadObjects(other), [otherChunk!.key]);
    await t.notThrowsAsync(blobs.removeUpload(id), 'removing an upload twice is fine');
  });

  test('an upload begun before the flat upload layout (objects under uploads/<id>/) still commits and is removed', async (t) => {
    const blobs = createBlobs(store());
    const data = randomBytes(3 * KiB);
    const d = digest(data);
    const id = upload(t, blobs, d);
    // What an earlier version left: the first chunk under the upload's own directory (prefix).
    const legacyKey = `uploads/${id}/${'0'.repeat(16)}-0123456789ab`;
    await store().write(legacyKey, streamOf(data.subarray(0, KiB)));
    const [rest] = await writeChunks(blobs, id, [data.subarray(KiB)], KiB);
    t.is(uploadIdOfKey(legacyKey), id);
    t.is(uploadIdOfKey(rest!.key), id);
    t.deepEqual((await uploadObjects(id)).sort(), [legacyKey, rest!.key].sort());

    await blobs.commit(id, [{ offset: 0, size: KiB, key: legacyKey }, rest!], d);
    t.deepEqual(await readAll(await blobs.open(d)), data);
    await blobs.removeUpload(id);
    t.deepEqual(await uploadObjects(id), []);
  });

  test('delete removes a blob; stat and open of a missing blob say so', async (t) => {
    const blobs = createBlobs(store());
    const data = randomBytes(KiB);
    const d = digest(data);
    const id = upload(t, blobs, d);
    await blobs.commit(id, await writeChunks(blobs, id, [data]), d);
    await blobs.delete(d);
    await assertAbsent(t, blobs, d);
    await t.notThrowsAsync(blobs.delete(d));
  });
  uploadProperty(test, store, 25);
}

type UploadStep =
  | { kind: 'chunk'; size: number; piece: number }
  | { kind: 'lost'; size: number; rivalFirst: boolean }
  | { kind: 'failed'; size: number }
  | { kind: 'empty' }
  | { kind: 'restart' }
  | { kind: 'crash'; size: number };

const uploadStep: fc.Arbitrary<UploadStep> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('chunk' as const),
      size: fc.integer({ min: 1, max: 24 * KiB }),
      piece: fc.integer({ min: 1, max: 9 * KiB }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('lost' as const), size: fc.integer({ min: 1, max: 12 * KiB }), rivalFirst: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('failed' as const), size: fc.integer({ min: 0, max: 12 * KiB }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), size: fc.integer({ min: 1, max: 12 * KiB }) }) },
);

/**
 * Whatever happens to an upload on its way (chunks recorded, chunks that lose their offset to a
 * rival from another replica and are discarded, bodies cut off, empty bodies, restarts), the blob a
 * commit makes holds exactly the recorded chunks' bytes, and nothing else verifies.
 */
function uploadProperty(test: TestFn, store: () => BlobStore, numRuns: number): void {
  test('property: a commit makes a blob of exactly the recorded chunks, whatever happened on the way', async (t) => {
    await fc.assert(
      fc.asyncProperty(fc.array(uploadStep, { minLength: 1, maxLength: 8 }), fc.boolean(), async (steps, finalBody) => {
        let blobs = createBlobs(store());
        const rivalReplica = createBlobs(store());
        const id = randomUUID();
        const recorded: UploadChunk[] = [];
        const bytes: Buffer[] = [];
        let offset = 0;
        const record = (replica: Blobs, chunk: UploadChunk, data: Buffer): void => {
          replica.chunkRecorded(id, chunk);
          recorded.push(chunk);
          bytes.push(data);
          offset += chunk.size;
        };
        try {
          for (const step of steps) {
            if (step.kind === 'restart') blobs = createBlobs(store());
            else if (step.kind === 'crash') {
              // Cut off while appending a chunk: its bytes stay after the recorded ones; then a restart.
              const s = store();
              const last = recorded.at(-1)?.key;
              const size = last === undefined ? undefined : (await s.stat(last))?.size;
              if (hasInPlaceAppends(s) && last !== undefined && size !== undefined)
                await s.append(last, size, streamOf(randomBytes(step.size)));
              blobs = createBlobs(s);
            } else if (step.kind === 'empty') assert.equal((await blobs.writeChunk(id, offset, streamOf(Buffer.alloc(0)))).size, 0);
            else if (step.kind === 'failed') {
              await assert.rejects(blobs.writeChunk(id, offset, failingStream(randomBytes(step.size))), /reset by test/);
            } else if (step.kind === 'chunk') {
              const data = randomBytes(step.size);
              record(blobs, await blobs.writeChunk(id, offset, streamOf(data, step.piece)), data);
            } else {
              // Both write at this offset; the other replica's chunk is recorded, this one's discarded.
              const loser = randomBytes(step.size);
              const winner = randomBytes(step.size);
              let rival: UploadChunk | undefined;
              if (step.rivalFirst) rival = await rivalReplica.writeChunk(id, offset, streamOf(winner));
              const lost = await blobs.writeChunk(id, offset, streamOf(loser));
              rival ??= await rivalReplica.writeChunk(id, offset, streamOf(winner));
              record(rivalReplica, rival, winner);
              await blobs.discardChunk(id, lost);
            }
          }
          let chunks = recorded;
          const data = Buffer.concat(bytes);
          // (Never an empty blob: other tests of the suite, running meanwhile, own that one.)
          if (finalBody || offset === 0) {
            // A PUT's body joins the recorded chunks without being recorded itself.
            const last = randomBytes(5 * KiB);
            chunks = [...recorded, await blobs.writeChunk(id, offset, streamOf(last))];
            bytes.push(last);
          }
          const whole = Buffer.concat(bytes);
          await assert.rejects(blobs.commit(id, chunks, digest(Buffer.concat([whole, Buffer.from('x')]))), DigestMismatchError);
          if (data.length !== whole.length) await assert.rejects(blobs.commit(id, chunks, digest(data)), DigestMismatchError);
          assert.deepEqual(await blobs.commit(id, chunks, digest(whole)), { digest: digest(whole).digest, size: whole.length });
          assert.ok((await readAll(await blobs.open(digest(whole)))).equals(whole), 'the blob holds the recorded bytes');
          assert.deepEqual(await listAll(store(), uploadListPrefix(id)), []);
          await blobs.delete(digest(whole));
        } finally {
          await blobs.removeUpload(id);
        }
      }),
      { numRuns },
    );
    t.pass();
  });
}
