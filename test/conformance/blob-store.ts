// The one BlobStore suite: every store (filesystem, S3, …) runs it from its own *.test.ts file.
// It checks the contract written in storage/blob-store.ts and nothing a particular store happens to
// do. Each test works under keys of its own (a fresh upload id, blob keys of random digests) and
// removes them; an `after` hook checks that nothing is left under any of them.
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ExecutionContext, TestFn } from 'ava';
import { hasPositionalReads, hasPresignedGet, type BlobStore } from '../../storage/blob-store.js';
import { digestOf, parseDigest } from '../../storage/digest.js';
import { InvalidStorageKeyError, StorageNotFoundError } from '../../storage/errors.js';
import { blobKey, uploadAssemblyKey, uploadChunkKey, uploadIdOfKey, uploadPrefix } from '../../storage/paths.js';
import { sleep } from '../helpers/wait.js';

export interface BlobStoreFixture {
  store: BlobStore;
  cleanup(): Promise<void>;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** Streams `data` in pieces, as a request body would arrive. */
export function streamOf(data: Buffer, pieceSize = 64 * KiB): Readable {
  function* pieces(): Generator<Buffer> {
    for (let at = 0; at < data.length; at += pieceSize) yield data.subarray(at, at + pieceSize);
  }
  return Readable.from(pieces(), { objectMode: false });
}

/**
 * A stream that sends `before` (piece by piece when given pieces) and then fails, as a dropped
 * connection does.
 */
export function failingStream(before: Buffer | Buffer[]): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    yield* Array.isArray(before) ? before : [before];
    await sleep(5);
    throw new Error('connection reset by test');
  }
  return Readable.from(pieces(), { objectMode: false });
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

export async function listAll(store: BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.list(prefix)) keys.push(key);
  return keys.sort();
}

/**
 * Keys no object may have: ones that could leave a store's root (or its prefix of a bucket), and
 * malformed ones. `_tmp` is the filesystem store's own directory, reserved in every store.
 */
export const BAD_KEYS = [
  '',
  '/',
  '/etc/passwd',
  '/tmp/x',
  '..',
  '../escape',
  'a/../../escape',
  'a/..',
  'uploads/../../escape',
  '.',
  'a/./b',
  'a//b',
  'a/',
  '/a',
  'a\\..\\b',
  'a/b\u0000c',
  'a b',
  '_tmp/x',
  '_tmp',
];

/** List prefixes whose directory part could leave the root. */
export const BAD_PREFIXES = ['../', '../out', '/etc/', 'a/../../', 'uploads//'];

/** The storage key of a blob with random (so unused) content. */
function randomBlobKey(): string {
  return blobKey(parseDigest(digestOf('sha256', randomBytes(32)))!);
}

export function blobStoreConformance(test: TestFn, makeStore: () => Promise<BlobStoreFixture>): void {
  let fixture: BlobStoreFixture | undefined;
  const touched = new Set<string>();

  test.before(async () => {
    fixture = await makeStore();
  });
  test.after('the suite leaves no object behind', async (t) => {
    for (const prefix of touched) t.deepEqual(await listAll(store(), prefix), [], prefix);
  });
  test.after.always(async () => {
    await fixture?.cleanup();
  });

  function store(): BlobStore {
    if (!fixture) throw new Error('blob store fixture not ready');
    return fixture.store;
  }

  /** Keys private to one test, removed when it ends. */
  function space(t: ExecutionContext): { base: string; key(name: string): string; blob(): string } {
    const base = uploadPrefix(randomUUID());
    const blobs: string[] = [];
    touched.add(base);
    t.teardown(async () => {
      for (const key of [...(await listAll(store(), base)), ...blobs]) await store().delete(key);
    });
    return {
      base,
      key: (name) => `${base}${name}`,
      blob() {
        const key = randomBlobKey();
        blobs.push(key);
        touched.add(key);
        return key;
      },
    };
  }

  async function assertContent(t: ExecutionContext, key: string, expected: Buffer): Promise<void> {
    const stat = await store().stat(key);
    t.is(stat?.size, expected.length, `size of ${key}`);
    const actual = await readAll(await store().read(key));
    t.is(actual.length, expected.length, `bytes read from ${key}`);
    t.true(actual.equals(expected), `content of ${key}`);
  }

  test('malformed keys are refused by every operation with InvalidStorageKeyError', async (t) => {
    const { key } = space(t);
    const good = key('ok');
    await store().write(good, streamOf(Buffer.from('ok')));
    const s = store();
    const refused = { instanceOf: InvalidStorageKeyError };
    for (const bad of BAD_KEYS) {
      const label = JSON.stringify(bad);
      await t.throwsAsync(s.write(bad, streamOf(Buffer.from('evil'))), refused, `write ${label}`);
      await t.throwsAsync(s.stat(bad), refused, `stat ${label}`);
      await t.throwsAsync(s.read(bad), refused, `read ${label}`);
      await t.throwsAsync(s.delete(bad), refused, `delete ${label}`);
      await t.throwsAsync(s.move(good, bad), refused, `move to ${label}`);
      await t.throwsAsync(s.move(bad, good), refused, `move from ${label}`);
      if (hasPositionalReads(s)) await t.throwsAsync(s.openReader(bad), refused, `openReader ${label}`);
      if (hasPresignedGet(s)) await t.throwsAsync(s.presignedGetUrl(bad, 60), refused, `presignedGetUrl ${label}`);
    }
    for (const prefix of BAD_PREFIXES) {
      await t.throwsAsync(listAll(s, prefix), refused, `list ${JSON.stringify(prefix)}`);
    }
    // The good object went nowhere.
    await assertContent(t, good, Buffer.from('ok'));
  });

  test('stat of a missing object is undefined, read of it throws StorageNotFoundError', async (t) => {
    const { key, blob } = space(t);
    for (const missing of [key('nothing'), key('deeper/nothing'), blob()]) {
      t.is(await store().stat(missing), undefined);
      const err = await t.throwsAsync(store().read(missing), { instanceOf: StorageNotFoundError });
      t.is(err?.key, missing);
    }
  });

  for (const size of [0, 1, 1000, 256 * KiB, 256 * KiB + 1, MiB + 7]) {
    test(`write then stat and read return the same ${size} bytes`, async (t) => {
      const { key } = space(t);
      const data = randomBytes(size);
      const before = Date.now();
      const written = await store().write(key('object'), streamOf(data, 10_000));
      t.is(written.size, size);
      t.true(written.modified instanceof Date);
      // Allow for coarse or slightly skewed clocks (object stores stamp on the server).
      t.true(Math.abs(written.modified.getTime() - before) < 5 * 60_000);
      const stat = await store().stat(key('object'));
      t.is(stat?.size, size);
      t.true(stat?.modified instanceof Date);
      await assertContent(t, key('object'), data);
    });
  }

  test('write streams several MiB from a generator in small uneven pieces', async (t) => {
    const { blob } = space(t);
    const key = blob();
    const parts: Buffer[] = [];
    async function* generate(): AsyncGenerator<Buffer> {
      let sent = 0;
      for (let i = 0; sent < 3 * MiB; i++) {
        const part = randomBytes(1 + ((i * 7919) % (48 * KiB)));
        parts.push(part);
        sent += part.length;
        if (i % 16 === 0) await new Promise((resolve) => setImmediate(resolve));
        yield part;
      }
    }
    const written = await store().write(key, Readable.from(generate(), { objectMode: false }));
    const data = Buffer.concat(parts);
    t.true(data.length >= 3 * MiB);
    t.is(written.size, data.length);
    await assertContent(t, key, data);
  });

  test('read with start and end returns that inclusive range', async (t) => {
    const { key } = space(t);
    const data = randomBytes(600 * KiB + 3);
    await store().write(key('ranged'), streamOf(data));
    const last = data.length - 1;
    const ranges: Array<[number | undefined, number | undefined]> = [
      [0, 0],
      [0, 9],
      [10, 19],
      [last, last],
      [1000, undefined],
      [undefined, 99],
      [300 * KiB - 1, 300 * KiB + 1],
      [0, last],
    ];
    for (const [start, end] of ranges) {
      const got = await readAll(await store().read(key('ranged'), { start, end }));
      const expected = data.subarray(start ?? 0, end === undefined ? data.length : end + 1);
      t.true(got.equals(expected), `range ${start}-${end}: ${got.length} bytes, expected ${expected.length}`);
    }
  });

  test('read honours an aborted signal', async (t) => {
    const { key } = space(t);
    await store().write(key('abortable'), streamOf(randomBytes(2 * MiB)));
    const controller = new AbortController();
    controller.abort();
    await t.throwsAsync(async () => readAll(await store().read(key('abortable'), { signal: controller.signal })), {
      name: 'AbortError',
    });
  });

  test('a key that only prefixes other keys is not an object', async (t) => {
    const { key } = space(t);
    await store().write(key('dir/leaf'), streamOf(Buffer.from('leaf')));
    t.is(await store().stat(key('dir')), undefined);
    await t.throwsAsync(store().read(key('dir')), { instanceOf: StorageNotFoundError });
    await t.throwsAsync(store().move(key('dir'), key('elsewhere')), { instanceOf: StorageNotFoundError });
    await t.notThrowsAsync(store().delete(key('dir')));
    t.deepEqual(await listAll(store(), key('')), [key('dir/leaf')]);
    await assertContent(t, key('dir/leaf'), Buffer.from('leaf'));
  });

  test('a second write replaces the object', async (t) => {
    const { key } = space(t);
    await store().write(key('object'), streamOf(randomBytes(100 * KiB)));
    const second = randomBytes(3 * KiB);
    await store().write(key('object'), streamOf(second));
    await assertContent(t, key('object'), second);
  });

  test('write is atomic: a source that fails midway leaves no object', async (t) => {
    const { base, key, blob } = space(t);
    const blobTarget = blob();
    for (const target of [key('object'), key('nested/deeper/object'), blobTarget]) {
      await t.throwsAsync(store().write(target, failingStream(randomBytes(300 * KiB))), { message: /reset by test/ });
      t.is(await store().stat(target), undefined, target);
      await t.throwsAsync(store().read(target), { instanceOf: StorageNotFoundError });
    }
    t.deepEqual(await listAll(store(), base), []);
    t.deepEqual(await listAll(store(), blobTarget), []);
  });

  test('write is atomic: a source that fails midway leaves the previous object intact', async (t) => {
    const { key } = space(t);
    const previous = randomBytes(200 * KiB);
    await store().write(key('object'), streamOf(previous));
    await t.throwsAsync(store().write(key('object'), failingStream(randomBytes(400 * KiB))), {
      message: /reset by test/,
    });
    await assertContent(t, key('object'), previous);
    t.deepEqual(await listAll(store(), key('')), [key('object')]);
  });

  test('write with an already aborted signal fails and leaves nothing', async (t) => {
    const { base, key } = space(t);
    const controller = new AbortController();
    controller.abort();
    await t.throwsAsync(store().write(key('object'), streamOf(randomBytes(KiB)), { signal: controller.signal }), {
      name: 'AbortError',
    });
    t.is(await store().stat(key('object')), undefined);
    t.deepEqual(await listAll(store(), base), []);
  });

  test('write aborted midway fails and leaves the previous object intact', async (t) => {
    const { key } = space(t);
    const previous = randomBytes(10 * KiB);
    await store().write(key('object'), streamOf(previous));
    const controller = new AbortController();
    async function* slow(): AsyncGenerator<Buffer> {
      // Ends after ~2 s on its own, so a store that ignores the signal fails the test, not the run.
      for (let i = 0; i < 200; i++) {
        if (i === 3) controller.abort();
        yield randomBytes(16 * KiB);
        await sleep(10);
      }
    }
    await t.throwsAsync(store().write(key('object'), Readable.from(slow(), { objectMode: false }), { signal: controller.signal }), {
      name: 'AbortError',
    });
    await assertContent(t, key('object'), previous);
  });

  test('move renames an object, creating the target', async (t) => {
    const { key, blob } = space(t);
    const data = randomBytes(70 * KiB);
    const target = blob();
    await store().write(key('from'), streamOf(data));
    await store().move(key('from'), target);
    t.is(await store().stat(key('from')), undefined);
    await assertContent(t, target, data);
  });

  test('move replaces an existing target', async (t) => {
    const { key } = space(t);
    const data = randomBytes(5 * KiB);
    await store().write(key('from'), streamOf(data));
    await store().write(key('to'), streamOf(randomBytes(9 * KiB)));
    await store().move(key('from'), key('to'));
    t.is(await store().stat(key('from')), undefined);
    await assertContent(t, key('to'), data);
    t.deepEqual(await listAll(store(), key('')), [key('to')]);
  });

  test('move of a missing object throws StorageNotFoundError and leaves the target alone', async (t) => {
    const { key } = space(t);
    const data = randomBytes(KiB);
    await store().write(key('to'), streamOf(data));
    const err = await t.throwsAsync(store().move(key('missing'), key('to')), { instanceOf: StorageNotFoundError });
    t.is(err?.key, key('missing'));
    await t.throwsAsync(store().move(key('missing'), key('new')), { instanceOf: StorageNotFoundError });
    await assertContent(t, key('to'), data);
    t.is(await store().stat(key('new')), undefined);
  });

  test('delete removes an object and is idempotent', async (t) => {
    const { key } = space(t);
    await t.notThrowsAsync(store().delete(key('never-written')));
    await store().write(key('a'), streamOf(randomBytes(10)));
    await store().write(key('b'), streamOf(randomBytes(10)));
    await store().delete(key('a'));
    t.is(await store().stat(key('a')), undefined);
    await t.throwsAsync(store().read(key('a')), { instanceOf: StorageNotFoundError });
    await t.notThrowsAsync(store().delete(key('a')));
    t.deepEqual(await listAll(store(), key('')), [key('b')]);
  });

  test('list returns exactly the keys under a prefix', async (t) => {
    const { base, key } = space(t);
    const sibling = space(t);
    const id = uploadIdOfKey(key('x'))!;
    const chunk0 = uploadChunkKey(id, 0);
    const chunk1 = uploadChunkKey(id, 1234);
    const chunk2 = uploadChunkKey(id, 10 ** 12);
    const assembly = uploadAssemblyKey(id);
    const nested = [key('nested/a'), key('nested/b/c'), key('nested/b/d/e')];
    const all = [chunk0, chunk1, chunk2, assembly, ...nested];
    for (const k of [...all, sibling.key('other'), sibling.key('nested/a')]) {
      await store().write(k, streamOf(Buffer.from(k)));
    }

    t.deepEqual(await listAll(store(), base), [...all].sort());
    t.deepEqual(await listAll(store(), base.slice(0, -1)), [...all].sort(), 'prefix without the separator');
    t.deepEqual(await listAll(store(), key('000000000000')), [chunk0, chunk1].sort(), 'partial last segment');
    t.deepEqual(await listAll(store(), key('000')), [chunk0, chunk1, chunk2].sort(), 'partial last segment');
    t.deepEqual(await listAll(store(), key('assembled-')), [assembly]);
    t.deepEqual(await listAll(store(), key('nested/')), [...nested].sort());
    t.deepEqual(await listAll(store(), key('nested/b')), [key('nested/b/c'), key('nested/b/d/e')]);
    t.deepEqual(await listAll(store(), key('nest')), [...nested].sort());
    t.deepEqual(await listAll(store(), key('nested/a')), [key('nested/a')], 'a prefix equal to a key');
    t.deepEqual(await listAll(store(), key('zzz')), []);
    t.deepEqual(await listAll(store(), key('missing/dir/')), []);
    t.deepEqual(await listAll(store(), sibling.base), [sibling.key('nested/a'), sibling.key('other')]);

    await store().delete(chunk1);
    await store().delete(key('nested/b/c'));
    t.deepEqual(await listAll(store(), key('000000000000')), [chunk0]);
    t.deepEqual(await listAll(store(), key('nested/b')), [key('nested/b/d/e')]);
  });

  test('list finds blob keys built by storage/paths.ts', async (t) => {
    const { blob } = space(t);
    const key = blob();
    await store().write(key, streamOf(Buffer.from('content')));
    t.deepEqual(await listAll(store(), key), [key]);
    t.true((await listAll(store(), key.slice(0, key.lastIndexOf('/') + 1))).includes(key));
  });

  test('concurrent writes to the same key end with one complete version', async (t) => {
    const { key } = space(t);
    const versions = Array.from({ length: 6 }, () => randomBytes(384 * KiB + Math.floor(Math.random() * KiB)));
    async function* slowly(data: Buffer): AsyncGenerator<Buffer> {
      for (let at = 0; at < data.length; at += 32 * KiB) {
        yield data.subarray(at, at + 32 * KiB);
        await sleep(Math.random() * 3);
      }
    }
    const results = await Promise.all(
      versions.map((data) => store().write(key('contended'), Readable.from(slowly(data), { objectMode: false }))),
    );
    results.forEach((result, i) => t.is(result.size, versions[i]!.length));
    const final = await readAll(await store().read(key('contended')));
    t.true(
      versions.some((v) => v.equals(final)),
      `final object (${final.length} bytes) is exactly one of the written versions`,
    );
    t.is((await store().stat(key('contended')))?.size, final.length);
    t.deepEqual(await listAll(store(), key('')), [key('contended')]);
  });
}
