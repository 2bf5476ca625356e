// Sends a byte range of a stored object as the body of a response whose headers are set, through
// buffers of the sender's own, each read into again only once the socket has taken what it held.
//
// - Reused buffers, not a stream: a stream allocates a buffer per chunk, and on a 1 GiB pull
//   the garbage collection those allocations cause cost three times the CPU of the copy itself
//   (bench/, "pull 1 GiB").
// - Nothing is read ahead of the socket until the client has shown it reads. A write the kernel
//   takes at once is in the kernel's send buffer (several MB on loopback), which goes on sending
//   while the next piece is read; a write it cannot take yet is waited for. A client that stops
//   reading early therefore holds one small buffer and no more: before this, 200 connections that
//   asked for a 32 MiB blob and never read held two 1 MiB buffers each (142 MB to 509 MB of
//   resident memory; bench/, row 18).
// - Small pieces first: the buffer is 64 KiB until the socket has taken 16 MiB, more than the
//   kernel buffers of a client that reads nothing, then 1 MiB (a quarter of the reads, writes and
//   event-loop turns of 256 KiB: pulling 1 GiB took 0.6-0.8 s of server CPU instead of 0.8-1.3 s).
// - From then on, two 1 MiB buffers: while the socket still holds one piece, the next is read into
//   the other. Read only after the socket had taken the piece before it, a pull from the page cache
//   waited for each read (a trip through libuv's thread pool) with the socket's queue empty: 1 GiB
//   pulls ran at 0.75-0.81x of the Go registry's sendfile, and at 1.22-1.24x with the read
//   overlapped (bench/, rows 2 and 4, four alternating runs of five rounds).
// A client that requests a blob and never reads thus holds 64 KiB, one that stops after 16 MiB at
// most 2 MiB.
import type { ServerResponse } from 'node:http';
import type { ObjectReader } from '../storage/blob-store.js';

const SMALL_BYTES = 64 * 1024;
const LARGE_BYTES = 1024 * 1024;
/** Taken by the socket before the large buffer is used: past what a non-reading peer's kernel absorbs. */
const PROVEN_BYTES = 16 * 1024 * 1024;

/**
 * Writes bytes `start`..`end` (inclusive) of `reader` to `res` and ends it; closes the reader.
 * `onWrite` hears of each piece as it is handed to the socket (before the client can have it, so
 * a counter it feeds is never behind what a client saw). Stops early, without an error, when the
 * connection goes. A failed read destroys the response (its length is promised, so the client
 * sees the body cut short) and rejects.
 */
export async function sendObject(
  res: ServerResponse,
  reader: ObjectReader,
  start: number,
  end: number,
  onWrite: (bytes: number) => void = () => undefined,
): Promise<void> {
  const length = end - start + 1;
  let buffer: Buffer = Buffer.allocUnsafe(Math.min(SMALL_BYTES, length));
  /** The second large buffer, read into while the socket still holds the first. */
  let spare: Buffer | undefined;
  // Resolves false when the connection goes: a write's callback may never run then.
  const closed = new Promise<false>((resolve) => {
    if (res.destroyed) resolve(false);
    else res.once('close', () => resolve(false));
  });
  const readAt = async (into: Buffer, position: number): Promise<number> => {
    const wanted = Math.min(into.length, end - position + 1);
    const read = await reader.read(into.subarray(0, wanted), position);
    if (read < wanted) throw new Error(`the object ends at byte ${position + read}, before byte ${end + 1}`);
    return read;
  };

  let position = start;
  /** A read into `spare` of the piece at `position`, started before the last write was taken. */
  let next: Promise<number> | undefined;
  try {
    while (position <= end && !res.destroyed) {
      let read: number;
      if (next) {
        [buffer, spare] = [spare!, buffer];
        read = await next;
        next = undefined;
      } else {
        if (buffer.length < LARGE_BYTES && position - start >= PROVEN_BYTES) {
          buffer = Buffer.allocUnsafe(Math.min(LARGE_BYTES, end - position + 1));
          spare = Buffer.allocUnsafe(buffer.length);
        }
        read = await readAt(buffer, position);
      }
      position += read;
      onWrite(read);
      const written = new Promise<boolean>((resolve) => res.write(buffer.subarray(0, read), (err) => resolve(!err)));
      // Taken at once (nothing left in Node's or libuv's queues): the bytes are in the kernel and
      // the buffer is free. Otherwise the buffer is the socket's until the write's callback; a
      // proven client's next piece is read into the spare buffer meanwhile.
      if (res.writableLength > 0) {
        if (spare && position <= end) {
          next = readAt(spare, position);
          // Awaited at the top of the loop; a failure meanwhile must not go unhandled.
          next.catch(() => undefined);
        }
        if (!(await Promise.race([written, closed]))) return;
      }
    }
    if (!res.destroyed) res.end();
  } catch (err) {
    res.destroy();
    throw err;
  } finally {
    // A read still running when the connection went finishes before its file is closed.
    await next?.catch(() => undefined);
    await reader.close();
  }
}
