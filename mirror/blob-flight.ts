// One upstream fetch of a blob, shared by every pull that asks for it while it runs. The bytes go
// to storage (which hashes them and links the blob only when the digest matches) and, at the same
// time, to the clients that joined before the first byte was sent to any of them: nobody waits for
// the whole blob to be cached. A client that comes later waits for the fetch to finish and is
// served from storage. Memory stays flat in the blob's size: the fetch reads from the upstream only
// as fast as storage and every live client take the bytes (a client that leaves is dropped, the
// fetch goes on for the others and the cache; one that takes nothing for the proxy timeout is cut).
//
// A fetch goes on only while someone wants it (`want`: a pull's AbortSignal, or none for a caller
// that always does, such as a mirror run): once every pull that asked for it has gone, it is
// cancelled and stores nothing, as the Go registry's proxy stops with its request. Kept going for
// the cache, 150 cold pulls of blobs an upstream sent a byte a second, their clients gone at once,
// held 300 file descriptors for days, and more ran the registry out of them (adversarial testing).
//
// A client is sent each chunk one chunk late, and the last chunk only once the bytes are verified:
// storage hashes what it takes (blobs.ts) and says the sha256 as soon as the last byte went
// through, and the flight releases the last chunk when that is the digest, without waiting for
// storage to finish writing, fsync and link the blob (that wait was 0.2-0.3 s of a 256 MiB cold
// pull on the bench machine). The bytes are hashed once: hashing them in the flight as well took a
// quarter of the server's CPU during a cold pull there, against an eighth. For another algorithm
// the flight hashes. Bytes that do not match are never completed to anyone: the connection is cut,
// so the client sees a body shorter than its Content-Length. That is safe because clients check
// what they read: containers/image reads blobs through a digesting reader that fails with "Digest
// did not match" (copy/digest_helpers.go), and docker's pull fails with "filesystem layer
// verification failed for digest" (moby distribution/pull_v2.go); a truncated body is an error
// before either check. Storage makes the blob visible only once the bytes match, are fsynced and
// linked; until then a later pull waits for it, as before.
import { createHash } from 'node:crypto';
import { PassThrough, Transform, type Readable } from 'node:stream';
import type { ParsedDigest } from '../storage/digest.js';
import { DigestMismatchError } from '../storage/errors.js';

export type FlightStart =
  | { kind: 'missing' }
  /** What the bytes must add up to (a descriptor's size, or the upstream's Content-Length). */
  | { kind: 'found'; size: number; body: Readable }
  | {
      kind: 'found';
      size: undefined;
      body: Readable;
      /**
       * Without a size, the most bytes that may arrive, and why (`more than <why>`): an upstream
       * that streams without end must not fill the disk (adversarial testing).
       */
      max: { bytes: number; why: string };
    };

export interface BlobFlight {
  /** Whether the upstream has the blob, and its size when it said. */
  readonly ready: Promise<{ kind: 'missing' } | { kind: 'found'; size: number | undefined }>;
  /** Resolves once the blob is stored (or known missing); rejects when the fetch failed. */
  readonly done: Promise<'stored' | 'missing'>;
  /** The bytes as they arrive, when this caller is early enough to be sent them all; else undefined. */
  join(): Readable | undefined;
  /**
   * Counts a caller that wants the blob until `signal` aborts; without one, for as long as the
   * fetch runs. The fetch is cancelled when the last of them goes before the bytes were verified.
   */
  want(signal?: AbortSignal): void;
}

export interface FlightOptions {
  /** What the bytes must hash to before the last of them reach a client. */
  digest: ParsedDigest;
  start: () => Promise<FlightStart>;
  /**
   * Stores the stream (it throws, and stores nothing, when the digest does not match), telling
   * `onHashed` the sha256 of the bytes once it hashed the last of them, before they are durable.
   */
  store: (body: Readable, size: number | undefined, onHashed: (sha256: string) => void) => Promise<void>;
  /**
   * Called as soon as the bytes are known not to match, while storage may still be finishing: the
   * clients were cut, and a pull from now on must start a fetch of its own, not join this one.
   */
  retire: () => void;
  /** The error of bytes that are not what the upstream announced: the upstream's fault, not ours. */
  fault: (reason: string) => Error;
  /** How long a client may take nothing before it is cut from the fetch (REGISTRY_PROXY_TIMEOUT). */
  stallMs: number;
}

/** Why a fetch stopped: every pull that wanted it went away first. Nothing was stored. */
export class FlightAbandonedError extends Error {
  constructor(digest: string) {
    super(`every pull of ${digest} went away before it arrived; the fetch stopped`);
    this.name = 'FlightAbandonedError';
  }
}

export function startBlobFlight(options: FlightOptions): BlobFlight {
  const subscribers = new Set<PassThrough>();
  let emitted = false;
  let finished = false;
  /** Callers whose signals have not aborted; `always` once one came without a signal. */
  let wanted = 0;
  let always = false;
  let abandoned: FlightAbandonedError | undefined;
  /**
   * Set once the bytes matched the digest: from then on the clients' bytes are theirs to finish,
   * and the fetch no longer stops.
   */
  let verified = false;
  /** Stops the upstream body once it is there (set when the fetch found the blob). */
  let stop: ((err: Error) => void) | undefined;

  /**
   * Writes to every live client; resolves once each took it, left, or was cut for taking nothing
   * for `stallMs`: the fetch goes at the pace of its slowest client, and one that never reads
   * held the blob for every pull, those waiting for it to be stored included (adversarial testing).
   */
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
            const stalled = setTimeout(
              () => client.destroy(new Error(`the client took nothing of ${options.digest.digest} for ${options.stallMs / 1000} s`)),
              options.stallMs,
            );
            const go = (): void => {
              clearTimeout(stalled);
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
    stop = (err) => found.body.destroy(err);
    if (abandoned) stop(abandoned);
    let held: Buffer | undefined;
    let bytes = 0;
    // sha256 is hashed by storage (onHashed); another algorithm here.
    const ownHash = options.digest.algorithm === 'sha256' ? undefined : createHash(options.digest.algorithm);
    let release: Promise<void> = Promise.resolve();
    /** Releases the last chunk when `actual` is the digest; cuts every client when it is not. */
    function verify(actual: string): DigestMismatchError | undefined {
      if (actual !== options.digest.digest) {
        const err = new DigestMismatchError(options.digest.digest, actual);
        options.retire();
        endClients(err);
        return err;
      }
      verified = true;
      const last = held;
      held = undefined;
      // Storage goes on writing (its tail, the fsync, the link) while the clients finish.
      release = (last ? broadcast(last) : Promise.resolve()).then(() => endClients());
      release.catch(() => undefined);
      return undefined;
    }
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        // Cut as soon as more arrives than may: nothing of it is stored (store() fails).
        if (found.size !== undefined && bytes > found.size) {
          callback(options.fault(`sent more than the ${found.size} bytes of blob ${options.digest.digest}`));
          return;
        }
        if (found.size === undefined && bytes > found.max.bytes) {
          callback(options.fault(`sent more than ${found.max.why} for blob ${options.digest.digest}`));
          return;
        }
        ownHash?.update(chunk);
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
          callback(options.fault(`sent ${bytes} of the ${found.size} bytes of blob ${options.digest.digest}`));
          return;
        }
        callback(ownHash ? verify(`${options.digest.algorithm}:${ownHash.digest('hex')}`) : undefined);
      },
    });
    found.body.on('error', (err) => tap.destroy(err));
    found.body.pipe(tap);
    try {
      // Throws (DigestMismatchError) and stores nothing when the bytes are not the digest's.
      await options.store(tap, found.size, (actual) => {
        if (!ownHash && !verified) verify(actual);
      });
    } catch (err) {
      found.body.destroy();
      // Verified bytes already sent stay sent: a storage failure only costs the cache.
      endClients(verified ? undefined : (err as Error));
      throw err;
    }
    // Stored means verified, should storage not have said the hash (it always does for sha256).
    if (!verified) verify(options.digest.digest);
    await release;
    return 'stored';
  });
  // Callers who never look at `done` or `ready` must not leave an unhandled rejection behind: one
  // is a crash (a signature artifact's blob whose upstream timed out before answering ended the
  // process, since its copy awaits `done` alone; adversarial testing).
  done.catch(() => undefined);
  const said = ready.then((found) => (found.kind === 'missing' ? found : { kind: 'found' as const, size: found.size }));
  said.catch(() => undefined);

  return {
    ready: said,
    done,
    join() {
      if (emitted || finished) return undefined;
      const client = new PassThrough({ highWaterMark: 1024 * 1024 });
      subscribers.add(client);
      client.once('close', () => subscribers.delete(client));
      return client;
    },
    want(signal) {
      if (!signal) {
        always = true;
        return;
      }
      wanted += 1;
      const gone = (): void => {
        wanted -= 1;
        // Once verified, the bytes are the cache's to finish storing.
        if (wanted > 0 || always || verified || finished || abandoned) return;
        abandoned = new FlightAbandonedError(options.digest.digest);
        options.retire();
        stop?.(abandoned);
      };
      // A pull that went before it could say it wants the blob wants it no more.
      if (signal.aborted) gone();
      else signal.addEventListener('abort', gone, { once: true });
    },
  };
}
