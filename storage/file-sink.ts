// A writable file for streams of many chunks (an HTTP body is a fresh buffer per socket read, of
// up to 64 KiB). Until the file holds a buffer's worth, a chunk that arrives while the disk is
// idle is written as it is, so a small blob allocates nothing. Every other chunk is copied into
// one of two buffers of the sink's own and dropped at once, and a full buffer is written while the
// other fills:
// - Queued in a write stream instead, those chunks waited long enough to be promoted to the old
//   generation, and on a 1 GiB push freeing them took a full garbage collection every ~50 ms.
// - Written one by one, the file system's per-write cost added up: a 1 GiB push spent 2.2-4.3 s
//   of system time against 1.6-2.0 s in 1 MiB writes, and ran 4-39% slower (bench/, five rounds).
//
// With `directIo`, full buffers go to the disk with O_DIRECT, past the page cache. Copying a
// layer into the page cache was most of a push's system time and varied with the host from 0.5
// to 3 s per GiB on the bench machine (perf: copy_folio_from_iter_atomic, the copy into the
// cache's pages), while a direct write of the same GiB costs about 0.1 s (dd: 0.07-0.12 s). It
// also keeps one large push from evicting the cache that serves manifests and small blobs. The
// pieces a direct write cannot take (the start of the file up to a 4 KiB boundary, the tail) are
// written through the page cache; once a file system refuses O_DIRECT (EINVAL), every sink of the
// process writes buffered.
//
// Like fs.createWriteStream's `flush`, the data is fsynced before the stream finishes. What an
// fdatasync costs grows with what it flushes, O_DIRECT writes included (a virtual disk in the
// host's page cache flushes them there): 28-31 ms for 32 MiB and ~100 ms for 128 MiB on the bench
// machine, against 0.7 ms for a 64 KiB tail (a probe, December 2026). So, as RocksDB's
// `bytes_per_sync` and PostgreSQL's `backend_flush_after` do, the sink starts an fdatasync in the
// background each time another SYNC_EVERY bytes are written, one at a time, and the flush of a
// large blob runs while its body still arrives; the final fdatasync is left with the last few
// MiB. A background fdatasync that fails fails the stream at its end: Linux reports a writeback
// error to one fsync only, so the final one could succeed after a lost write.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { isAligned, returnAlignedBuffer, takeAlignedBuffer } from './aligned-buffers.js';
import { isErrno } from './errors.js';

/** Each of the two buffers: a multiple of DIRECT_ALIGNMENT and of WebAssembly's 64 KiB pages. */
const BUFFER_BYTES = 1024 * 1024;
/**
 * Written bytes after which the next background fdatasync starts (when none runs). On the bench
 * machine 1 MiB took a 512 MiB streamed push from 474 to 586 MiB/s and a 1 GiB one from 419 to
 * 529 (4 MiB: 496 and 8 MiB: 463, four alternating rounds each); syncs that take longer than a
 * MiB's arrival merge, as only one runs at a time.
 */
const SYNC_EVERY = BUFFER_BYTES;
/** Offsets and lengths of direct writes are multiples of this: it serves 512- and 4096-byte devices. */
const DIRECT_ALIGNMENT = 4096;
/** Undefined where the platform has no O_DIRECT (macOS): writes are buffered there. */
const O_DIRECT: number | undefined = (constants as { O_DIRECT?: number }).O_DIRECT;
/** Set once the kernel refused a direct open or write: every later sink writes buffered. */
let directRefused = false;

export interface FileSinkOptions {
  /** Write full buffers with O_DIRECT (where the file system takes it). */
  directIo?: boolean;
  /** Write into the existing file from this byte on (in place) instead of creating it. */
  at?: number;
}

async function writeAll(handle: FileHandle, buffer: Buffer, from: number, length: number, position: number): Promise<void> {
  for (let done = 0; done < length;) {
    const { bytesWritten } = await handle.write(buffer, from + done, length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Creates `file` (it must not exist, as flag 'wx') and writes the stream into it, fsynced at the
 * end; with `at`, writes into the existing file from that byte on instead.
 */
export function createFileSink(file: string, options: FileSinkOptions = {}): Writable {
  const wantDirect = options.directIo === true && O_DIRECT !== undefined;
  let handle: FileHandle | undefined;
  let directHandle: FileHandle | undefined;
  const buffers: (Buffer | undefined)[] = [undefined, undefined];
  let turn = 0;
  let filled = 0;
  let position = options.at ?? 0;
  let busy = false;
  // The write running now; a buffer it uses is filled again only after it ends.
  let writing: Promise<void> = Promise.resolve();
  // Set by destroy: a chunk still being taken starts no further write.
  let closed = false;
  // Written since the last background fdatasync began; the one running, and a failure of any.
  let unsynced = 0;
  let syncing: Promise<void> | undefined;
  let syncFailure: Error | undefined;

  function syncBehind(written: number): void {
    unsynced += written;
    if (unsynced < SYNC_EVERY || syncing || closed) return;
    unsynced = 0;
    syncing = handle!
      .datasync()
      .catch((err: unknown) => void (syncFailure ??= err instanceof Error ? err : new Error(String(err))))
      .finally(() => (syncing = undefined));
  }

  async function writeOut(data: Buffer, length: number, at: number): Promise<void> {
    if (wantDirect && !directRefused && at % DIRECT_ALIGNMENT === 0 && length % DIRECT_ALIGNMENT === 0 && isAligned(data)) {
      try {
        directHandle ??= await open(file, constants.O_WRONLY | O_DIRECT);
        const { bytesWritten } = await directHandle.write(data, 0, length, at);
        // Short (a disk filling up): the rest goes buffered, and a real failure shows there.
        if (bytesWritten < length) await writeAll(handle!, data, bytesWritten, length - bytesWritten, at + bytesWritten);
        return;
      } catch (err) {
        if (!isErrno(err, 'EINVAL')) throw err;
        directRefused = true;
      }
    }
    await writeAll(handle!, data, 0, length, at);
  }

  function start(data: Buffer, length: number): void {
    busy = true;
    writing = writeOut(data, length, position)
      .then(() => syncBehind(length))
      .finally(() => (busy = false));
    // A failure surfaces at the next chunk or at the end, not as an unhandled rejection meanwhile.
    writing.catch(() => undefined);
    position += length;
  }

  async function flush(): Promise<void> {
    await writing;
    if (closed) throw new Error('the file sink was closed');
    start(buffers[turn % 2]!, filled);
    turn++;
    filled = 0;
  }

  async function take(chunk: Buffer): Promise<void> {
    if (!busy && filled === 0 && position < BUFFER_BYTES) {
      // Settled already (not busy), but a failure must stop the stream here: writing on past a
      // failed write would leave a hole in the file that the stream's hash never saw.
      await writing;
      if (closed) throw new Error('the file sink was closed');
      start(chunk, chunk.length);
      return;
    }
    for (let offset = 0; offset < chunk.length;) {
      const buffer = (buffers[turn % 2] ??= takeAlignedBuffer(BUFFER_BYTES));
      // The buffer starts at `position`; ending it on a 4 KiB boundary lets every later one be
      // written directly, whatever the chunks written as they came left the file at.
      const limit = BUFFER_BYTES - (position % DIRECT_ALIGNMENT);
      const copied = chunk.copy(buffer, filled, offset, offset + (limit - filled));
      filled += copied;
      offset += copied;
      if (filled === limit) await flush();
    }
  }

  return new Writable({
    construct(callback) {
      open(file, options.at === undefined ? 'wx' : 'r+').then((h) => {
        handle = h;
        callback();
      }, callback);
    },
    write(chunk: Buffer, _encoding, callback) {
      take(chunk).then(() => callback(), callback);
    },
    final(callback) {
      (async () => {
        if (filled > 0) await flush();
        await writing;
        await syncing;
        if (syncFailure) throw syncFailure;
        // Covers the direct writes too: fdatasync flushes the inode's size, its extents and the
        // device's write cache, whichever descriptor wrote the data.
        await handle!.datasync();
      })().then(() => callback(), callback);
    },
    destroy(err, callback) {
      // A closed sink starts no further write: a chunk that was waiting on the previous write
      // sees `closed` when it resumes (take and flush check it). So the write in flight now is the
      // last; once it has finished with the file and the buffers, they are closed and pooled.
      closed = true;
      Promise.all([writing.catch(() => undefined), syncing])
        .then(() => {
          const opened = [handle, directHandle];
          handle = directHandle = undefined;
          for (const buffer of buffers) if (buffer) returnAlignedBuffer(buffer);
          buffers[0] = buffers[1] = undefined;
          return Promise.all(opened.flatMap((h) => (h ? [h.close()] : [])));
        })
        .then(
          () => callback(err),
          (closeErr: unknown) => callback(err ?? (closeErr as Error)),
        );
    },
  });
}
