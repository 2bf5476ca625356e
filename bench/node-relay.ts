// A bare relay, started as a process of its own by bench/mirror-rows.ts: each request is
// forwarded to the upstream with undici's request (as mirror/upstream.ts fetches) and the answer's body
// streamed back, nothing hashed, stored or checked. What it reaches is what one node process
// costs to pass a blob through (two socket copies and HTTP in JavaScript): the ceiling of a cold
// pull through the mirror, which also hashes and stores the bytes.
import http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { request } from 'undici';

const [upstream, port] = process.argv.slice(2);
if (!upstream || !port) throw new Error('usage: node-relay.ts <upstream URL> <port>');

const server = http.createServer((req, res) => {
  void (async () => {
    const answer = await request(`${upstream}${req.url ?? '/'}`, { method: req.method === 'HEAD' ? 'HEAD' : 'GET' });
    const headers: Record<string, string> = {};
    for (const name of ['content-length', 'content-type', 'docker-content-digest', 'docker-distribution-api-version']) {
      const value = answer.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    res.writeHead(answer.statusCode, headers);
    await pipeline(answer.body, res);
  })().catch(() => res.destroy());
});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
