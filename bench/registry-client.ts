// A minimal OCI distribution client on node:http with keep-alive: just what the workloads need.
import { createHash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface Response {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export const ACCEPT_MANIFESTS = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export class RegistryClient {
  readonly agent: http.Agent;

  constructor(
    readonly baseUrl: string,
    maxSockets = 16,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  close(): void {
    this.agent.destroy();
  }

  url(pathOrLocation: string): URL {
    return new URL(pathOrLocation, this.baseUrl);
  }

  /** One request with an optional in-memory or streamed body; the answer is read whole. */
  async request(
    method: string,
    target: URL,
    options: { headers?: Record<string, string>; body?: Buffer | Readable } = {},
  ): Promise<Response> {
    const { body } = options;
    const headers: Record<string, string> = { ...options.headers };
    if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
    else if (body === undefined && (method === 'PUT' || method === 'POST' || method === 'PATCH')) headers['Content-Length'] = '0';
    const req = http.request(target, { method, headers, agent: this.agent });
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.on('error', reject);
    });
    // Awaited together, so a failure of either is never left unhandled.
    const sent = body instanceof Readable ? pipeline(body, req) : Promise.resolve(req.end(body));
    const [res] = await Promise.all([answered, sent]);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** Fails with the server's own words when the status is not the expected one. */
  async expect(status: number, method: string, target: URL, options?: Parameters<RegistryClient['request']>[2]): Promise<Response> {
    const res = await this.request(method, target, options);
    if (res.status !== status) {
      const said = res.body.toString('utf8').slice(0, 300);
      throw new Error(`${method} ${target.pathname} answered ${res.status}, expected ${status}: ${said}`);
    }
    return res;
  }

  async startUpload(repository: string): Promise<URL> {
    const res = await this.expect(202, 'POST', this.url(`/v2/${repository}/blobs/uploads/`));
    const location = res.headers.location;
    if (!location) throw new Error('POST blobs/uploads/ answered without Location');
    return this.url(location);
  }

  /** POST for a session, then PUT ?digest= with the whole blob: the form both registries take. */
  async pushBlob(repository: string, data: Buffer, digest = sha256(data)): Promise<string> {
    const location = await this.startUpload(repository);
    location.searchParams.set('digest', digest);
    await this.expect(201, 'PUT', location, { body: data, headers: { 'Content-Type': 'application/octet-stream' } });
    return digest;
  }

  /** POST, one streamed PATCH (chunked, as docker sends layers), PUT ?digest=. */
  async pushStreamedBlob(repository: string, body: Readable, digest: string): Promise<void> {
    const location = await this.startUpload(repository);
    const patched = await this.expect(202, 'PATCH', location, {
      body,
      headers: { 'Content-Type': 'application/octet-stream' },
    });
    const next = this.url(patched.headers.location ?? location.href);
    next.searchParams.set('digest', digest);
    await this.expect(201, 'PUT', next);
  }

  /** POST for a session, then PUT ?digest= with the whole blob streamed with its Content-Length. */
  async pushMonolithicBlob(repository: string, body: Readable, length: number, digest: string): Promise<void> {
    const location = await this.startUpload(repository);
    location.searchParams.set('digest', digest);
    await this.expect(201, 'PUT', location, {
      body,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(length) },
    });
  }

  /**
   * POST, then `count` PATCHes of `chunk` each with its `Content-Range: <start>-<end>` (the spec's
   * form, PROTOCOL-NOTES.md) and Content-Length, each to the Location the previous answer gave,
   * then PUT ?digest=: a blob sent as the sum of equal chunks.
   */
  async pushChunkedBlob(repository: string, chunk: Buffer, count: number, digest: string): Promise<void> {
    let location = await this.startUpload(repository);
    for (let i = 0; i < count; i++) {
      const start = i * chunk.length;
      const patched = await this.expect(202, 'PATCH', location, {
        body: chunk,
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${start}-${start + chunk.length - 1}` },
      });
      location = this.url(patched.headers.location ?? location.href);
    }
    location.searchParams.set('digest', digest);
    await this.expect(201, 'PUT', location);
  }

  /** Streams a blob, hashing as it arrives; resolves to the byte count once the digest checks out. */
  async pullBlob(repository: string, digest: string): Promise<number> {
    const req = http.request(this.url(`/v2/${repository}/blobs/${digest}`), { method: 'GET', agent: this.agent });
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.on('error', reject);
      req.end();
    });
    if (res.statusCode !== 200) {
      res.resume();
      throw new Error(`GET blob answered ${res.statusCode}`);
    }
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of res) {
      bytes += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== digest) throw new Error(`pulled blob hashes to ${actual}, expected ${digest}`);
    return bytes;
  }

  /**
   * GETs a blob over a fresh connection and reads the body into one reused 1 MiB buffer, counting
   * it and nothing more; resolves to the byte count once `Content-Length` bytes have arrived.
   * This is the pull the bench times: a node HTTP client that also hashes is slower than either
   * registry can send (it caps both at the same rate), so the digest is checked by a second,
   * separately timed `pullBlob`. Headers are checked here: 200, the announced length, and
   * `Docker-Content-Digest` naming the blob. With `range` (inclusive byte offsets), a `Range`
   * request: 206 and the `Content-Range` and length of exactly those bytes.
   */
  drainBlob(repository: string, digest: string, range?: { start: number; end: number }): Promise<number> {
    const target = this.url(`/v2/${repository}/blobs/${digest}`);
    const status = range ? 206 : 200;
    return new Promise((resolve, reject) => {
      let head = '';
      let length = -1;
      let received = 0;
      let done = false;
      const finish = (err?: Error): void => {
        if (done) return;
        done = true;
        socket.destroy();
        if (err) reject(err);
        else resolve(received);
      };
      const readHead = (chunk: string): number | undefined => {
        head += chunk;
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return undefined;
        const lines = head.slice(0, end).split('\r\n');
        const header = (name: string): string | undefined =>
          lines
            .find((l) => l.toLowerCase().startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim();
        if (!new RegExp(`^HTTP/1\\.[01] ${status} `).test(lines[0] ?? '')) throw new Error(`GET blob answered ${lines[0]}`);
        length = Number(header('content-length') ?? NaN);
        if (!Number.isSafeInteger(length)) throw new Error('GET blob answered without Content-Length');
        if (range) {
          const contentRange = header('content-range') ?? '';
          if (!contentRange.startsWith(`bytes ${range.start}-${range.end}/`) || length !== range.end - range.start + 1)
            throw new Error(`GET blob answered Content-Range ${contentRange}, Content-Length ${length} for ${range.start}-${range.end}`);
        } else if (header('docker-content-digest') !== digest)
          throw new Error(`GET blob answered Docker-Content-Digest ${header('docker-content-digest')}`);
        // The body bytes that came in with the head.
        return head.length - end - 4;
      };
      const socket = net.connect({
        host: target.hostname,
        port: Number(target.port),
        onread: {
          buffer: Buffer.allocUnsafe(1024 * 1024),
          callback: (bytes: number, buffer: Uint8Array): boolean => {
            try {
              if (length < 0) {
                const bodyBytes = readHead(Buffer.from(buffer.buffer, buffer.byteOffset, bytes).toString('latin1'));
                if (bodyBytes === undefined) return true;
                received += bodyBytes;
              } else {
                received += bytes;
              }
              if (received > length) throw new Error(`GET blob sent more than its Content-Length of ${length}`);
              if (received === length) finish();
            } catch (err) {
              finish(err as Error);
            }
            return true;
          },
        },
      });
      socket.on('error', (err) => finish(err));
      socket.on('close', () => finish(new Error(`connection closed after ${received} of ${length < 0 ? '?' : length} body bytes`)));
      const rangeHeader = range ? `Range: bytes=${range.start}-${range.end}\r\n` : '';
      socket.write(`GET ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\n${rangeHeader}Connection: close\r\n\r\n`);
    });
  }

  async putManifest(repository: string, reference: string, manifest: Buffer, mediaType: string): Promise<void> {
    await this.expect(201, 'PUT', this.url(`/v2/${repository}/manifests/${reference}`), {
      body: manifest,
      headers: { 'Content-Type': mediaType },
    });
  }
}
