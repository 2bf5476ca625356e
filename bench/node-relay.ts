// A bare relay, started as a process of its own by bench/mirror-rows.ts: each request is
// forwarded to the upstream with fetch (as mirror/upstream.ts fetches) and the answer's body
// streamed back, nothing hashed, stored or checked. What it reaches is what one node process
// costs to pass a blob through (two socket copies and HTTP in JavaScript): the ceiling of a cold
// pull through the mirror, which also hashes and stores the bytes.
import http from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream } from 'node:stream/web';

const [upstream, port] = process.argv.slice(2);
if (!upstream || !port) throw new Error('usage: node-relay.ts <upstream URL> <port>');

const server = http.createServer((req, res) => {
  void (async () => {
    const answer = await fetch(`${upstream}${req.url ?? '/'}`, { method: req.method ?? 'GET' });
    const headers: Record<string, string> = {};
    for (const name of ['content-length', 'content-type', 'docker-content-digest', 'docker-distribution-api-version']) {
      const value = answer.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    res.writeHead(answer.status, headers);
    if (!answer.body) {
      res.end();
      return;
    }
    await pipeline(Readable.fromWeb(answer.body as ReadableStream), res);
  })().catch(() => res.destroy());
});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
