// A minimal OCI distribution client on node:http with keep-alive: just what the workloads need.
import { createHash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
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

  async putManifest(repository: string, reference: string, manifest: Buffer, mediaType: string): Promise<void> {
    await this.expect(201, 'PUT', this.url(`/v2/${repository}/manifests/${reference}`), {
      body: manifest,
      headers: { 'Content-Type': mediaType },
    });
  }
}
