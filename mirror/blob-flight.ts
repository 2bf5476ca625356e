// One upstream fetch of a blob, shared by every pull that asks for it while it runs. The bytes go
// to storage (which hashes them and links the blob only when the digest matches) and, at the same
// time, to the clients that joined before the first byte was sent to any of them: nobody waits for
// the whole blob to be cached. A client that comes later waits for the fetch to finish and is
// served from storage. Memory stays flat in the blob's size: the fetch reads from the upstream only
// as fast as storage and every live client take the bytes (a client that leaves is dropped, the
// fetch goes on for the others and the cache).
//
// A client is sent each chunk one chunk late, and the last chunk only once storage verified the
// digest and linked the blob: bytes that do not match are never completed to anyone (the
// connection is cut), and a pull that completed left the blob cached for the next one. The bytes
// are hashed once, by storage (blobs.ts hashes while it writes).
import { PassThrough, Transform, type Readable } from 'node:stream';

export type FlightStart = { kind: 'missing' } | { kind: 'found'; size: number | undefined; body: Readable };

export interface BlobFlight {
  /** Whether the upstream has the blob, and its size when it said. */
  readonly ready: Promise<{ kind: 'missing' } | { kind: 'found'; size: number | undefined }>;
  /** Resolves once the blob is stored (or known missing); rejects when the fetch failed. */
  readonly done: Promise<'stored' | 'missing'>;
  /** The bytes as they arrive, when this caller is early enough to be sent them all; else undefined. */
  join(): Readable | undefined;
}

export interface FlightOptions {
  start: () => Promise<FlightStart>;
  /** Stores the verified stream (it throws, and stores nothing, when the digest does not match). */
  store: (body: Readable, size: number | undefined) => Promise<void>;
}

export function startBlobFlight(options: FlightOptions): BlobFlight {
  const subscribers = new Set<PassThrough>();
  let emitted = false;
  let finished = false;

  /** Writes to every live client; resolves once each took it (or left). */
  async function broadcast(chunk: Buffer): Promise<void> {
    emitted = true;
    const waits: Promise<void>[] = [];
    for (const client of subscribers) {
      if (client.destroyed) {
        subscribers.delete(client);
        continue;
      }
      if (!client.write(chunk)) {
        waits.push(
          new Promise((resolve) => {
            const go = (): void => {
              client.off('drain', go);
              client.off('close', go);
              resolve();
            };
            client.on('drain', go);
            client.on('close', go);
          }),
        );
      }
    }
    await Promise.all(waits);
  }

  function endClients(err?: Error): void {
    finished = true;
    for (const client of subscribers) {
      if (err) client.destroy(err);
      else client.end();
    }
    subscribers.clear();
  }

  const ready = options.start();
  const done = ready.then(async (found): Promise<'stored' | 'missing'> => {
    if (found.kind === 'missing') {
      endClients();
      return 'missing';
    }
    let held: Buffer | undefined;
    let bytes = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        if (found.size !== undefined && bytes > found.size) {
          callback(new Error(`the upstream sent more than the ${found.size} bytes it announced`));
          return;
        }
        const previous = held;
        held = chunk;
        if (!previous) {
          callback(null, chunk);
          return;
        }
        broadcast(previous).then(
          () => callback(null, chunk),
          (err: unknown) => callback(err as Error),
        );
      },
      flush(callback) {
        if (found.size !== undefined && bytes !== found.size) {
          callback(new Error(`the upstream sent ${bytes} of the ${found.size} bytes it announced`));
          return;
        }
        callback();
      },
    });
    found.body.on('error', (err) => tap.destroy(err));
    found.body.pipe(tap);
    try {
      // Throws (DigestMismatchError) and stores nothing when the bytes are not the digest's.
      await options.store(tap, found.size);
    } catch (err) {
      found.body.destroy();
      endClients(err as Error);
      throw err;
    }
    if (held) await broadcast(held);
    endClients();
    return 'stored';
  });
  // Callers who never look at `done` must not leave an unhandled rejection behind.
  done.catch(() => undefined);

  return {
    ready: ready.then((found) => (found.kind === 'missing' ? found : { kind: 'found', size: found.size })),
    done,
    join() {
      if (emitted || finished) return undefined;
      const client = new PassThrough({ highWaterMark: 1024 * 1024 });
      subscribers.add(client);
      client.once('close', () => subscribers.delete(client));
      return client;
    },
  };
}
