// The blob sender (server/send-object.ts) against clients that read nothing, read some and stop,
// or read slowly: it reads nothing ahead of what the socket took until the client has taken
// 16 MiB, then one piece at most, and every range arrives whole. The reader is the filesystem
// store's, counting what it is asked for.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { sendObject } from '../../server/send-object.js';
import type { ObjectReader } from '../../storage/blob-store.js';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { sleep, until } from '../helpers/wait.js';
import { listenForTest } from '../helpers/loopback-server.js';

const MiB = 1024 * 1024;

interface Counted {
  reads: number;
  bytes: number;
  largest: number;
}

function counting(reader: ObjectReader, counted: Counted): ObjectReader {
  return {
    size: reader.size,
    async read(buffer, position) {
      counted.reads += 1;
      counted.largest = Math.max(counted.largest, buffer.length);
      const n = await reader.read(buffer, position);
      counted.bytes += n;
      return n;
    },
    close: () => reader.close(),
  };
}

interface Sending {
  port: number;
  counted: Counted;
  /** Bytes handed to the response so far. */
  handed: () => number;
  response: () => http.ServerResponse | undefined;
  finished: () => Promise<void> | undefined;
}

/** A server that sends bytes `start`..`end` of a stored `data` to each request. */
async function serve(t: ExecutionContext, data: Buffer, start = 0, end = data.length - 1): Promise<Sending> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-send-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = createFilesystemBlobStore({ rootDirectory: dir });
  await store.write('uploads/blob', Readable.from([data], { objectMode: false }));
  const counted: Counted = { reads: 0, bytes: 0, largest: 0 };
  let handed = 0;
  let response: http.ServerResponse | undefined;
  let finished: Promise<void> | undefined;
  const server = http.createServer((_req, res) => {
    response = res;
    res.setHeader('Content-Length', String(end - start + 1));
    finished = store
      .openReader('uploads/blob')
      .then((reader) => sendObject(res, counting(reader, counted), start, end, (n) => (handed += n)));
  });
  const url = await listenForTest(t, server);
  return {
    port: Number(new URL(url).port),
    counted,
    handed: () => handed,
    response: () => response,
    finished: () => finished,
  };
}

/** Waits until the sender has stopped reading (its count unchanged over 200 ms). */
async function readsSettle(counted: Counted): Promise<boolean> {
  let last = -1;
  return until(async () => {
    const now = counted.reads;
    const settled = now === last;
    last = now;
    await sleep(200);
    return settled;
  }, 20_000);
}

test('a client that never reads: nothing is read ahead of what the socket took, in small pieces', async (t) => {
  const size = 32 * MiB;
  const sending = await serve(t, randomBytes(size));
  const { counted } = sending;
  const client = net.connect(sending.port, '127.0.0.1');
  client.pause();
  client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

  // The socket fills (the kernel takes a few MB), then the sender waits: its reads stop.
  t.true(await until(() => (sending.response()?.writableLength ?? 0) > 0, 20_000), 'the socket filled');
  t.true(await readsSettle(counted), 'the reads stopped');

  const takenBySocket = sending.handed() - sending.response()!.writableLength;
  const readAhead = counted.bytes - takenBySocket;
  t.true(counted.bytes < size, 'the whole blob was not read');
  t.true(readAhead <= 64 * 1024, `read but not taken by the socket: ${readAhead} bytes`);
  t.true(counted.largest <= 64 * 1024, `largest read: ${counted.largest} bytes`);

  client.destroy();
  const ended = await Promise.race([sending.finished()!.then(() => true), sleep(10_000).then(() => false)]);
  t.true(ended, 'the sender ended when the client left');
});

test('a client that reads 24 MiB and stops: the sender holds one piece read ahead, no more', async (t) => {
  const size = 64 * MiB;
  const sending = await serve(t, randomBytes(size));
  const { counted } = sending;
  const client = net.connect(sending.port, '127.0.0.1');
  let received = 0;
  client.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received >= 24 * MiB) client.pause();
  });
  client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

  t.true(await until(() => received >= 24 * MiB && (sending.response()?.writableLength ?? 0) > 0, 20_000), 'the socket filled');
  t.true(await readsSettle(counted), 'the reads stopped');

  const takenBySocket = sending.handed() - sending.response()!.writableLength;
  const readAhead = counted.bytes - takenBySocket;
  t.true(counted.bytes < size, 'the whole blob was not read');
  // The piece the socket queues, and the next one read into the other buffer.
  t.true(readAhead <= 2 * MiB, `read but not taken by the socket: ${readAhead} bytes`);
  t.true(counted.largest <= MiB, `largest read: ${counted.largest} bytes`);
  t.true(readAhead > MiB, `the next piece was read while the socket held one (${readAhead} bytes ahead)`);

  client.destroy();
  const ended = await Promise.race([sending.finished()!.then(() => true), sleep(10_000).then(() => false)]);
  t.true(ended, 'the sender ended when the client left');
});

/** Reads a response slowly (pausing between reads, so the sender's writes queue): its body. */
async function slowBody(port: number): Promise<Buffer> {
  const client = net.connect(port, '127.0.0.1');
  client.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const chunks: Buffer[] = [];
  for await (const chunk of client) {
    chunks.push(chunk as Buffer);
    if (chunks.length % 64 === 0) await sleep(1);
  }
  const whole = Buffer.concat(chunks);
  return whole.subarray(whole.indexOf('\r\n\r\n') + 4);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

test('any range of a large object arrives whole and in order to a client slower than the disk', async (t) => {
  const data = randomBytes(40 * MiB);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: data.length - 1 }), fc.integer({ min: 0, max: data.length - 1 }), async (a, b) => {
      const [start, end] = a <= b ? [a, b] : [b, a];
      const sending = await serve(t, data, start, end);
      const body = await slowBody(sending.port);
      await sending.finished();
      return body.length === end - start + 1 && sha256(body) === sha256(data.subarray(start, end + 1));
    }),
    // Ranges past the 16 MiB that switch to large pieces, read ahead, included every run.
    {
      numRuns: 8,
      examples: [
        [0, data.length - 1],
        [1, data.length - 2],
        [16 * MiB - 1, 40 * MiB - 1],
      ],
    },
  );
  t.pass();
});
