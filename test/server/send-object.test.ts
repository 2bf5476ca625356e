// The blob sender against a client that asks and never reads: the server reads nothing ahead of
// what the socket took, and holds at most one small buffer for such a client
// (server/send-object.ts). The reader is the filesystem store's, counting what it is asked for.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import test from 'ava';
import { sendObject } from '../../server/send-object.js';
import type { ObjectReader } from '../../storage/blob-store.js';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { sleep, until } from '../helpers/wait.js';

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

test('a client that never reads: nothing is read ahead of what the socket took, in small pieces', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-send-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = createFilesystemBlobStore({ rootDirectory: dir });
  const size = 32 * MiB;
  await store.write('uploads/blob', Readable.from([randomBytes(size)], { objectMode: false }));

  const counted: Counted = { reads: 0, bytes: 0, largest: 0 };
  let handed = 0;
  let response: http.ServerResponse | undefined;
  let finished: Promise<void> | undefined;
  const server = http.createServer((_req, res) => {
    response = res;
    res.setHeader('Content-Length', String(size));
    finished = store
      .openReader('uploads/blob')
      .then((reader) => sendObject(res, counting(reader, counted), 0, size - 1, (n) => (handed += n)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  client.pause();
  client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

  // The socket fills (the kernel takes a few MB), then the sender waits: its reads stop.
  t.true(await until(() => (response?.writableLength ?? 0) > 0, 20_000), 'the socket filled');
  let last = -1;
  t.true(
    await until(async () => {
      const now = counted.reads;
      const settled = now === last;
      last = now;
      await sleep(200);
      return settled;
    }, 20_000),
    'the reads stopped',
  );

  const takenBySocket = handed - response!.writableLength;
  const readAhead = counted.bytes - takenBySocket;
  t.true(counted.bytes < size, 'the whole blob was not read');
  t.true(readAhead <= 64 * 1024, `read but not taken by the socket: ${readAhead} bytes`);
  t.true(counted.largest <= 64 * 1024, `largest read: ${counted.largest} bytes`);

  client.destroy();
  const ended = await Promise.race([finished!.then(() => true), sleep(10_000).then(() => false)]);
  t.true(ended, 'the sender ended when the client left');
});
