// The machine's bound for a push, started by bench/servers.ts (startBodySink) as a process of its
// own: an HTTP server that takes a request body, hashes it (sha256, OpenSSL in node's crypto, the
// hash Signet uses) while writing it to a file in 4 MiB writes past the page cache (O_DIRECT, by
// libuv's threads while the next bytes are read and hashed; copying into the page cache is the
// dearest part of a push on a virtual machine, see storage/file-sink.ts), fsyncs the file as both
// registries do before a blob becomes visible, and answers 201 with the digest. Like Signet's
// file sink it starts an fdatasync after each write while none runs, so the flush overlaps the
// body's arrival and the last one has only the tail left. No database, no upload session, no
// checks: the ceiling the big push rows are measured against.
//
//   node --import tsx bench/body-sink.ts <host:port> <directory>
import { createHash } from 'node:crypto';
import { constants, mkdirSync } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';

const [address, directory] = process.argv.slice(2);
if (!address || !directory) throw new Error('usage: body-sink.ts <host:port> <directory>');
const [host, port] = address.split(':');
mkdirSync(directory, { recursive: true });
let bodies = 0;
const BUFFER_BYTES = 4 * 1024 * 1024;

/** O_DIRECT writes need page-aligned memory: a WebAssembly.Memory's is (storage/aligned-buffers.ts). */
function alignedBuffer(bytes: number): Buffer {
  const pages = bytes / (64 * 1024);
  return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
}

/** Two buffers: one fills while the other is written. One push at a time uses them. */
const buffers = [alignedBuffer(BUFFER_BYTES), alignedBuffer(BUFFER_BYTES)] as const;

async function writeAll(handle: FileHandle, buffer: Buffer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length;) done += (await handle.write(buffer, done, length - done, position + done)).bytesWritten;
}

/** Past the page cache where the file system allows it, else through it. */
async function openForWriting(file: string): Promise<FileHandle> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;
  try {
    return await open(file, flags | constants.O_DIRECT);
  } catch {
    return open(file, flags);
  }
}

async function receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'GET') {
    res.writeHead(200, { 'Content-Length': 0 }).end();
    return;
  }
  const file = path.join(directory!, `body-${bodies++}`);
  const hash = createHash('sha256');
  const direct = await openForWriting(file);
  let turn = 0;
  let filled = 0;
  let position = 0;
  let writing: Promise<void> = Promise.resolve();
  let syncing: Promise<void> | undefined;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      for (let from = 0; from < chunk.length;) {
        const n = chunk.copy(buffers[turn]!, filled, from);
        filled += n;
        from += n;
        if (filled === BUFFER_BYTES) {
          await writing;
          writing = writeAll(direct, buffers[turn]!, BUFFER_BYTES, position).then(() => {
            syncing ??= direct.datasync().finally(() => (syncing = undefined));
          });
          position += BUFFER_BYTES;
          turn = 1 - turn;
          filled = 0;
        }
      }
    }
    await writing;
    await syncing;
  } finally {
    await syncing?.catch(() => undefined);
    await direct.close();
  }
  // The tail (not a whole number of blocks, as O_DIRECT wants) through the page cache, and the fsync.
  const tail = await open(file, 'r+');
  try {
    await writeAll(tail, buffers[turn]!, filled, position);
    await tail.sync();
  } finally {
    await tail.close();
  }
  res.writeHead(201, { 'Docker-Content-Digest': `sha256:${hash.digest('hex')}`, 'Content-Length': 0 }).end();
  // Not part of the push: the bodies would only fill the disk.
  await rm(file, { force: true });
}

http
  .createServer((req, res) => {
    receive(req, res).catch((err: unknown) => {
      process.stderr.write(`body sink: ${String(err)}\n`);
      res.destroy();
    });
  })
  .listen(Number(port), host);
