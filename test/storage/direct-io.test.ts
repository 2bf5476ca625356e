// Large uploads are written past the page cache (O_DIRECT, storage/file-sink.ts). What an operator
// notices: a pushed layer does not push the cached manifests and small blobs out of memory, and the
// stored bytes are exactly the ones sent, whatever the sizes of the pieces they arrived in.
// `fincore` (util-linux) reports how much of a file sits in the page cache.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { takeAlignedBuffer } from '../../storage/aligned-buffers.js';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { failingStream, readAll } from '../conformance/blob-store.js';
import { testWithCommands } from '../helpers/env.js';
import { sha256 } from '../helpers/oci-layout.js';

const MiB = 1024 * 1024;
const TMPFS_MAGIC = 0x01021994;
// Inside the checkout, not the system's temporary directory: that is tmpfs on many machines, where
// the page cache is the file itself.
const PARENT = fileURLToPath(new URL('../../.test-tmp/', import.meta.url));

/** Why direct writes cannot be observed here, or undefined when they can. */
function directIoUnavailable(): string | undefined {
  mkdirSync(PARENT, { recursive: true });
  if (constants.O_DIRECT === undefined) return 'this platform has no O_DIRECT';
  if (statfsSync(PARENT).type === TMPFS_MAGIC) return `${PARENT} is on tmpfs`;
  const probe = path.join(PARENT, `probe-${process.pid}`);
  try {
    const fd = openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT);
    try {
      writeSync(fd, takeAlignedBuffer(64 * 1024), 0, 4096, 0);
    } finally {
      closeSync(fd);
    }
    return undefined;
  } catch (err) {
    return `the file system of ${PARENT} refuses O_DIRECT (${(err as Error).message})`;
  } finally {
    rmSync(probe, { force: true });
  }
}

const test = testWithCommands('direct I/O', ['fincore'], { check: directIoUnavailable });

function residentBytes(file: string): number {
  const result = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`fincore failed: ${result.stderr}`);
  return Number(result.stdout.trim());
}

/** 24 MiB and a bit, starting with a piece that leaves the file off any 4 KiB boundary. */
function oddPieces(): Buffer[] {
  const pieces = [randomBytes(1000)];
  for (let i = 0; i < 24 * 16; i++) pieces.push(randomBytes(64 * 1024 - (i % 3) * 100));
  pieces.push(randomBytes(777));
  return pieces;
}

async function writeLayer(t: { teardown(fn: () => Promise<void>): void }, directIo: boolean) {
  const root = await mkdtemp(path.join(PARENT, 'store-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const store = createFilesystemBlobStore({ rootDirectory: root, directIo });
  const pieces = oddPieces();
  // One piece per read, as a socket hands them over, not one concatenated buffer.
  await store.write('uploads/layer/data', Readable.from(pieces, { objectMode: false }));
  const file = path.join(root, 'uploads', 'layer', 'data');
  const sent = Buffer.concat(pieces);
  return { store, file, sent };
}

test.serial('a large upload leaves only its first and last MiB in the page cache, byte for byte as sent', async (t) => {
  const { store, file, sent } = await writeLayer(t, true);
  // Measured before reading it back, which fills the cache.
  const cached = residentBytes(file);
  t.true(cached <= 2 * MiB + 8192, `${cached} bytes of a ${sent.length}-byte upload are in the page cache`);
  const stored = await readAll(await store.read('uploads/layer/data'));
  t.is(stored.length, sent.length);
  t.is(sha256(stored), sha256(sent));
});

test.serial('with direct I/O off, the same upload stays in the page cache', async (t) => {
  // The control for the test above: fincore does see a buffered write.
  const { store, file, sent } = await writeLayer(t, false);
  t.true(residentBytes(file) >= sent.length * 0.9);
  t.is(sha256(await readAll(await store.read('uploads/layer/data'))), sha256(sent));
});

test.serial('uploads cut off mid-stream hand their buffers back without touching the uploads beside them', async (t) => {
  // Buffers are pooled across uploads: one given back to the pool while its sink still fills or
  // writes it would put one upload's bytes into another's file. Uploads that fail midway (their
  // sinks are destroyed with writes in flight) give theirs back beside uploads that go on.
  const root = await mkdtemp(path.join(PARENT, 'store-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const store = createFilesystemBlobStore({ rootDirectory: root, directIo: true });
  for (let round = 0; round < 3; round++) {
    const kept = Array.from({ length: 4 }, () => oddPieces().slice(0, 100));
    const writes = kept.map((pieces, i) => store.write(`uploads/kept-${round}-${i}/data`, Readable.from(pieces, { objectMode: false })));
    const cut = Array.from({ length: 4 }, (_, i) =>
      store.write(`uploads/cut-${round}-${i}/data`, failingStream(oddPieces().slice(0, 40 + 7 * i))),
    );
    for (const failed of await Promise.allSettled(cut)) t.is(failed.status, 'rejected');
    await Promise.all(writes);
    for (const [i, pieces] of kept.entries()) {
      const stored = await readAll(await store.read(`uploads/kept-${round}-${i}/data`));
      t.is(sha256(stored), sha256(Buffer.concat(pieces)), `round ${round}, upload ${i}`);
    }
  }
});
