// An upstream registry on loopback for mirror tests: Debian's Go registry (`docker-registry`) in a
// temporary directory, a counting HTTP proxy in front of it (which requests reached the upstream,
// and a switch to corrupt answers or refuse connections), and a static file server for a
// lookaside folder, as Red Hat serves its sigstore.
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const GO_REGISTRY = '/usr/bin/docker-registry';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function listenLoopback(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export interface GoRegistry {
  port: number;
  url: string;
  stop(): Promise<void>;
}

export async function startGoRegistry(): Promise<GoRegistry> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-upstream-'));
  const port = await freePort();
  const config = path.join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'storage')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('REGISTRY_')) env[key] = value;
  const child: ChildProcess = spawn(GO_REGISTRY, ['serve', config], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => void (stderr = (stderr + data.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry exited: ${stderr}`);
    }
    const up = await fetch(`${url}/v2/`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    url,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface CountingProxy {
  port: number;
  /** `127.0.0.1:<port>`, as clients name it. */
  host: string;
  url: string;
  /** `METHOD path` of every request forwarded so far. */
  requests: string[];
  count(method: string, pathPattern: RegExp): number;
  /** Flip one byte in the middle of bodies of GETs whose path matches (undefined: stop). */
  corrupt(pathPattern: RegExp | undefined): void;
  /**
   * Require a token, as registries with the distribution token spec do: 401 with a Bearer
   * challenge pointing at this proxy's `/token`, which issues one for these Basic credentials.
   */
  requireToken(credentials: { username: string; password: string }): void;
  /**
   * Answer blob GETs with a 307 to `base` + the same path (another origin: a CDN or object store,
   * as Docker Hub, Quay and Red Hat do), or stop (undefined).
   */
  redirectBlobs(base: string | undefined): void;
  /** Send part of the first chunk of bodies of GETs whose path matches (at most 1 KiB, at most half), then nothing more (undefined: stop). */
  stall(pathPattern: RegExp | undefined): void;
  /** Refuse connections (as a stopped upstream) or accept them again. */
  setDown(down: boolean): Promise<void>;
  close(): Promise<void>;
}

/** `tls`: serve https with this certificate (the upstream behind it stays http). */
export async function startCountingProxy(
  targetPort: number,
  options: { tls?: { cert: Buffer; key: Buffer } } = {},
): Promise<CountingProxy> {
  const requests: string[] = [];
  let corruptPattern: RegExp | undefined;
  let tokenAuth: { username: string; password: string } | undefined;
  let blobRedirect: string | undefined;
  let stallPattern: RegExp | undefined;
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  let port = 0;
  /** Answers token requests and refuses requests without the token; true when it answered. */
  const guarded = (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    if (!tokenAuth) return false;
    const url = new URL(req.url ?? '/', 'http://proxy');
    if (url.pathname === '/token') {
      const expected = `Basic ${Buffer.from(`${tokenAuth.username}:${tokenAuth.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected || url.searchParams.get('service') !== 'upstream') {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
      }
      return true;
    }
    if (req.headers.authorization === `Bearer ${token}`) return false;
    res
      .writeHead(401, {
        'WWW-Authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="upstream"`,
        'Content-Type': 'application/json',
      })
      .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
    return true;
  };
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    requests.push(`${req.method} ${req.url}`);
    if (guarded(req, res)) return;
    if (blobRedirect && req.method === 'GET' && /^\/v2\/.+\/blobs\/[a-z0-9]+:[a-f0-9]+$/.test(req.url ?? '')) {
      res.writeHead(307, { Location: `${blobRedirect}${req.url}` }).end();
      return;
    }
    const upstream = http.request(
      {
        host: '127.0.0.1',
        port: targetPort,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: `127.0.0.1:${targetPort}` },
      },
      (answer) => {
        const headers = { ...answer.headers };
        const corrupt = req.method === 'GET' && corruptPattern?.test(req.url ?? '') && answer.statusCode === 200;
        res.writeHead(answer.statusCode ?? 502, headers);
        if (req.method === 'GET' && stallPattern?.test(req.url ?? '') && answer.statusCode === 200) {
          answer.once('data', (chunk: Buffer) => {
            res.write(chunk.subarray(0, Math.min(1024, Math.floor(chunk.length / 2))));
            answer.destroy();
          });
          return;
        }
        if (!corrupt) {
          answer.pipe(res);
          return;
        }
        let flipped = false;
        answer.on('data', (chunk: Buffer) => {
          if (!flipped && chunk.length > 0) {
            chunk[Math.floor(chunk.length / 2)]! ^= 0xff;
            flipped = true;
          }
          res.write(chunk);
        });
        answer.on('end', () => res.end());
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  };
  const create = (): http.Server => (options.tls ? https.createServer(options.tls, handler) : http.createServer(handler));
  let server = create();
  port = await listenLoopback(server);
  return {
    port,
    host: `127.0.0.1:${port}`,
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    count: (method, pattern) => requests.filter((r) => r.startsWith(`${method} `) && pattern.test(r.slice(method.length + 1))).length,
    corrupt(pattern) {
      corruptPattern = pattern;
    },
    requireToken(credentials) {
      tokenAuth = credentials;
    },
    redirectBlobs(base) {
      blobRedirect = base;
    },
    stall(pattern) {
      stallPattern = pattern;
    },
    async setDown(down) {
      if (down) {
        await closeServer(server);
        return;
      }
      server = create();
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
    close: () => (server.listening ? closeServer(server) : Promise.resolve()),
  };
}

/** Sends `req` on to `target` and its answer back as it came (the request's body too). */
function relay(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: { host: string; port: number | string; path: string; headers?: http.IncomingHttpHeaders },
): void {
  const upstream = http.request({ ...target, method: req.method }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
}

export interface BlobStore {
  url: string;
  /** `METHOD path` of every request, and whether it carried an Authorization header. */
  requests: { line: string; authorization: boolean }[];
  close(): Promise<void>;
}

/**
 * Where an upstream redirects blob GETs: it serves them from the Go registry on `targetPort`, and
 * refuses a request that carries an Authorization header with 400, as S3 does with a presigned URL
 * ("Only one auth mechanism allowed").
 */
export async function startBlobStore(targetPort: number): Promise<BlobStore> {
  const requests: BlobStore['requests'] = [];
  const server = http.createServer((req, res) => {
    requests.push({ line: `${req.method} ${req.url}`, authorization: req.headers.authorization !== undefined });
    if (req.headers.authorization !== undefined) {
      res.writeHead(400, { 'Content-Type': 'application/xml' }).end('<Error><Code>InvalidArgument</Code></Error>');
      return;
    }
    relay(req, res, { host: '127.0.0.1', port: targetPort, path: req.url ?? '/' });
  });
  const port = await listenLoopback(server);
  return { url: `http://127.0.0.1:${port}`, requests, close: () => closeServer(server) };
}

export interface ForwardProxy {
  /** `http://127.0.0.1:<port>`, for HTTP_PROXY and HTTPS_PROXY. */
  url: string;
  /** `GET http://host/path` for requests it forwarded, `CONNECT host:port` for tunnels it opened. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * An HTTP forward proxy, as a corporate network has: absolute-form requests and CONNECT tunnels.
 * It resolves `hosts` itself (names the registry cannot resolve: reached only through it).
 */
export async function startForwardProxy(hosts: Record<string, string> = {}): Promise<ForwardProxy> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    const target = new URL(req.url ?? '/');
    relay(req, res, {
      host: hosts[target.hostname] ?? target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      headers: req.headers,
    });
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    requests.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), hosts[host ?? ''] ?? host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
  });
  const port = await listenLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      for (const socket of sockets) socket.destroy();
      await closeServer(server);
    },
  };
}

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

/** Serves files under `root` (GET and HEAD; anything else, or a missing file, is 404). */
export async function startStaticServer(root: string): Promise<StaticServer> {
  const server = http.createServer((req, res) => {
    const file = path.join(root, decodeURIComponent((req.url ?? '/').split('?')[0]!));
    if (!file.startsWith(root)) {
      res.writeHead(404).end();
      return;
    }
    stat(file).then(
      (info) => {
        if (!info.isFile()) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'Content-Length': info.size, 'Content-Type': 'application/octet-stream' });
        if (req.method === 'HEAD') res.end();
        else createReadStream(file).pipe(res);
      },
      () => res.writeHead(404).end(),
    );
  });
  const port = await listenLoopback(server);
  return { url: `http://127.0.0.1:${port}`, close: () => closeServer(server) };
}

/** Pushes a blob to a Go registry: POST, then one PUT with the bytes (Location may be absolute). */
export async function pushBlobTo(base: string, repository: string, blob: { data: Buffer; digest: string }): Promise<number> {
  const started = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  await started.arrayBuffer();
  if (started.status !== 202) return started.status;
  const location = new URL(started.headers.get('location')!, base);
  location.searchParams.set('digest', blob.digest);
  const res = await fetch(location, {
    method: 'PUT',
    body: new Uint8Array(blob.data),
    headers: { 'Content-Type': 'application/octet-stream' },
  });
  await res.arrayBuffer();
  return res.status;
}
