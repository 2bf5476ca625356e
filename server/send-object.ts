// Sends a byte range of a stored object as the body of a response whose headers are set, through
// two buffers that take turns: one is read into while the other is being written to the socket.
// A stream allocates a buffer per chunk instead, and on a 1 GiB pull the garbage collection those
// allocations cause cost three times the CPU of the copy itself (bench/, "pull 1 GiB").
import type { ServerResponse } from 'node:http';
import type { ObjectReader } from '../storage/blob-store.js';

// 1 MiB: a quarter of the reads, writes and event-loop turns of 256 KiB, for 2 MiB per blob being
// sent. Pulling 1 GiB took 0.6-0.8 s of server CPU instead of 0.8-1.3 s (bench/, four rounds each).
const CHUNK_BYTES = 1024 * 1024;

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
  const chunkBytes = Math.min(CHUNK_BYTES, end - start + 1);
  const buffers = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];
  // A buffer is read into again only once the socket has taken the write that used it: a write's
  // callback runs when the bytes are in the kernel, or with an error when the connection is gone.
  const closed = new Promise<false>((resolve) => {
    if (res.destroyed) resolve(false);
    else res.once('close', () => resolve(false));
  });
  const write = (data: Buffer): Promise<boolean> =>
    Promise.race([new Promise<boolean>((resolve) => res.write(data, (err) => resolve(!err))), closed]);

  let position = start;
  let writing: Promise<boolean> = Promise.resolve(!res.destroyed);
  try {
    for (let turn = 0; position <= end; turn++) {
      const buffer = buffers[turn % 2]!;
      const wanted = Math.min(chunkBytes, end - position + 1);
      const read = await reader.read(buffer.subarray(0, wanted), position);
      if (read < wanted) throw new Error(`the object ends at byte ${position + read}, before byte ${end + 1}`);
      if (!(await writing)) return;
      position += read;
      onWrite(read);
      writing = write(buffer.subarray(0, read));
    }
    if (await writing) res.end();
  } catch (err) {
    res.destroy();
    throw err;
  } finally {
    await reader.close();
  }
}
