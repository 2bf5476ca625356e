// A writable file for streams of many chunks (an HTTP body is a fresh buffer per socket read, of
// up to 64 KiB). Until the file holds a buffer's worth, a chunk that arrives while the disk is
// idle is written as it is, so a small blob allocates nothing. Every other chunk is copied into
// one of two buffers of the sink's own and dropped at once, and a full buffer is written while the
// other fills:
// - Queued in a write stream instead, those chunks waited long enough to be promoted to the old
//   generation, and on a 1 GiB push freeing them took a full garbage collection every ~50 ms.
// - Written one by one, the file system's per-write cost added up: a 1 GiB push spent 2.2-4.3 s
//   of system time against 1.6-2.0 s in 1 MiB writes, and ran 4-39% slower (bench/, five rounds).
// Like fs.createWriteStream's `flush`, the data is fsynced before the stream finishes.
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

const BUFFER_BYTES = 1024 * 1024;

async function writeAll(handle: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesWritten } = await handle.write(buffer, done, length - done, position + done);
    done += bytesWritten;
  }
}

/** Creates `file` (it must not exist, as flag 'wx') and writes the stream into it, fsynced at the end. */
export function createFileSink(file: string, bufferBytes = BUFFER_BYTES): Writable {
  let handle: FileHandle | undefined;
  const buffers: (Buffer | undefined)[] = [undefined, undefined];
  let turn = 0;
  let filled = 0;
  let position = 0;
  let busy = false;
  // The write running now; a buffer it uses is filled again only after it ends.
  let writing: Promise<void> = Promise.resolve();

  function start(data: Buffer, length: number): void {
    busy = true;
    writing = writeAll(handle!, data, length, position).finally(() => (busy = false));
    // A failure surfaces at the next chunk or at the end, not as an unhandled rejection meanwhile.
    writing.catch(() => undefined);
    position += length;
  }

  async function flush(): Promise<void> {
    await writing;
    start(buffers[turn % 2]!, filled);
    turn++;
    filled = 0;
  }

  async function take(chunk: Buffer): Promise<void> {
    if (!busy && filled === 0 && position < bufferBytes) {
      // Settled already (not busy), but a failure must stop the stream here: writing on past a
      // failed write would leave a hole in the file that the stream's hash never saw.
      await writing;
      start(chunk, chunk.length);
      return;
    }
    for (let offset = 0; offset < chunk.length; ) {
      const buffer = (buffers[turn % 2] ??= Buffer.allocUnsafeSlow(bufferBytes));
      const copied = chunk.copy(buffer, filled, offset);
      filled += copied;
      offset += copied;
      if (filled === bufferBytes) await flush();
    }
  }

  return new Writable({
    construct(callback) {
      open(file, 'wx').then((h) => {
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
        await handle!.datasync();
      })().then(() => callback(), callback);
    },
    destroy(err, callback) {
      const opened = handle;
      handle = undefined;
      // Let a write in flight finish with the file before closing it.
      writing
        .catch(() => undefined)
        .then(() => opened?.close())
        .then(() => callback(err), (closeErr: unknown) => callback(err ?? (closeErr as Error)));
    },
  });
}
