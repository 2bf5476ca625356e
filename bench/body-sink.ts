// The machine's bound for a push, started by bench/servers.ts (startBodySink) as a process of its
// own: an HTTP server that takes a request body, hashes it (sha256, OpenSSL in node's crypto, the
// hash Signet uses) while writing it to a file (by libuv's threads, while the next bytes are
// read and hashed), fsyncs the file as both registries do before a blob becomes visible, and answers
// 201 with the digest. No database, no upload session, no checks: what no registry can beat by
// much on this machine with node, and what the big push rows are measured against.
//
//   node --import tsx bench/body-sink.ts <host:port> <directory>
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import path from 'node:path';

const [address, directory] = process.argv.slice(2);
if (!address || !directory) throw new Error('usage: body-sink.ts <host:port> <directory>');
const [host, port] = address.split(':');
mkdirSync(directory, { recursive: true });
let bodies = 0;
const BATCH_BYTES = 4 * 1024 * 1024;

async function receive(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'GET') {
    res.writeHead(200, { 'Content-Length': 0 }).end();
    return;
  }
  const file = path.join(directory!, `body-${bodies++}`);
  const hash = createHash('sha256');
  const handle = await open(file, 'w');
  try {
    // Up to 4 MiB gathered while the previous write runs, then written in one call.
    let batch: Buffer[] = [];
    let batched = 0;
    let writing: Promise<unknown> = Promise.resolve();
    for await (const chunk of req as AsyncIterable<Buffer>) {
      hash.update(chunk);
      batch.push(chunk);
      batched += chunk.length;
      if (batched >= BATCH_BYTES) {
        await writing;
        writing = handle.writev(batch);
        batch = [];
        batched = 0;
      }
    }
    await writing;
    if (batch.length > 0) await handle.writev(batch);
    await handle.sync();
  } finally {
    await handle.close();
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
