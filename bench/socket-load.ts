// A small load generator on raw keep-alive sockets, the last resort for HEAD when ab is missing:
// wrk 4.1 and autocannon wait for the body a HEAD answer's Content-Length announces (wg/wrk#198).
// It costs more CPU per request than wrk or ab, so it understates both registries.
// One pre-encoded request per connection, the next sent when the answer's headers (and, for other
// methods, its Content-Length body) are in. Chunked responses are not supported.
import net from 'node:net';
import type { LoadGenerator, LoadResult, LoadSpec } from './load.js';

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH_RE = /\r\ncontent-length:\s*(\d+)/i;

function encodeRequest(spec: LoadSpec): Buffer {
  const url = new URL(spec.url);
  const lines = [`${spec.method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, 'Connection: keep-alive'];
  for (const [name, value] of Object.entries(spec.headers)) lines.push(`${name}: ${value}`);
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

export function createSocketLoad(): LoadGenerator {
  return {
    name: 'socket-load',
    run(spec) {
      const request = encodeRequest(spec);
      const url = new URL(spec.url);
      const expectBody = spec.method !== 'HEAD';
      let ok = 0;
      let failed = 0;
      let latencies = new Float64Array(1 << 16);
      let measured = 0;
      let running = true;
      const sockets: net.Socket[] = [];
      const started = performance.now();

      const record = (ms: number): void => {
        if (measured === latencies.length) {
          const grown = new Float64Array(latencies.length * 2);
          grown.set(latencies);
          latencies = grown;
        }
        latencies[measured++] = ms;
      };

      const open = (): void => {
        const socket = net.connect({ host: url.hostname, port: Number(url.port) });
        socket.setNoDelay(true);
        sockets.push(socket);
        let pending: Buffer = Buffer.alloc(0);
        let bodyLeft = 0;
        let inBody = false;
        let sentAt = 0;
        const send = (): void => {
          sentAt = performance.now();
          socket.write(request);
        };
        const answered = (status: number): void => {
          if (status >= 200 && status < 400) ok++;
          else failed++;
          record(performance.now() - sentAt);
          if (running) send();
        };
        let status = 0;
        socket.on('connect', send);
        socket.on('data', (chunk: Buffer) => {
          const data = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
          let pos = 0;
          while (pos < data.length) {
            if (inBody) {
              const take = Math.min(bodyLeft, data.length - pos);
              bodyLeft -= take;
              pos += take;
              if (bodyLeft > 0) break;
              inBody = false;
              answered(status);
              continue;
            }
            const end = data.indexOf(HEADER_END, pos);
            if (end < 0) break;
            const head = data.toString('latin1', pos, end);
            status = Number(head.slice(9, 12));
            pos = end + HEADER_END.length;
            bodyLeft = expectBody ? Number(CONTENT_LENGTH_RE.exec(head)?.[1] ?? 0) : 0;
            if (bodyLeft > 0) inBody = true;
            else answered(status);
          }
          pending = pos < data.length ? data.subarray(pos) : Buffer.alloc(0);
        });
        socket.on('error', () => {
          if (running) failed++;
        });
      };

      for (let i = 0; i < spec.connections; i++) open();
      return new Promise<LoadResult>((resolve) => {
        setTimeout(() => {
          running = false;
          const seconds = (performance.now() - started) / 1000;
          for (const socket of sockets) socket.destroy();
          const sorted = latencies.slice(0, measured).sort();
          resolve({ ok, failed, seconds, rps: ok / seconds, p99Ms: percentile(sorted, 99) });
        }, spec.seconds * 1000);
      });
    },
  };
}
