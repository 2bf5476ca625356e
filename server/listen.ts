// The HTTP(S) server around the app: TLS from REGISTRY_HTTP_TLS_*, timeouts fit for large layers
// over slow links (no whole-request deadline, but headers must arrive promptly and a connection
// whose bytes stop moving is dropped), malformed requests answered in the OCI error shape, and a
// graceful drain for shutdown.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config } from './config.js';
import { parseAddr } from './config.js';
import { OciError, ociErrorBody } from './errors.js';
import { RegistryResponse } from './response.js';

export type RequestListener = http.RequestListener;

export function createHttpServer(config: Config, listener: RequestListener): http.Server {
  // A missing Host header is refused by the app, in the OCI error shape, not by Node's bare 400.
  const options = { requireHostHeader: false, ServerResponse: RegistryResponse };
  const server = config.http.tls
    ? https.createServer({ ...options, cert: readFileSync(config.http.tls.certificate), key: readFileSync(config.http.tls.key) }, listener)
    : http.createServer(options, listener);
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  // No byte in either direction for this long: the socket is destroyed (there is no 'timeout'
  // listener). A stalled upload's body stream then fails, its partial chunk is deleted and
  // nothing is recorded; the client may resume from the last accepted chunk.
  server.timeout = config.http.idletimeout * 1000;
  server.on('clientError', answerClientError);
  // CONNECT (a client taking the registry for a forward proxy): without a listener Node closes the
  // socket without a word. The registry proxies nothing: 405 in its error shape, then close.
  server.on('connect', (req: http.IncomingMessage, socket: Duplex) => {
    refuseOnSocket(socket, new OciError('UNSUPPORTED', 'CONNECT is not supported: the registry is not a proxy', { method: req.method }));
  });
  // An Expect other than 100-continue: 417, with a body like every other refusal.
  server.on('checkExpectation', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    const body = ociErrorBody(new OciError('REQUEST_INVALID', 'only "Expect: 100-continue" is supported'));
    res.writeHead(417, { 'Content-Type': 'application/json', 'Docker-Distribution-API-Version': 'registry/2.0', Connection: 'close' });
    res.end(body);
  });
  return server;
}

/**
 * Requests Node's HTTP parser refuses (a malformed Content-Length, bad chunked framing, a body cut
 * short by the client's end of stream) get the registry's error shape instead of Node's bare 400.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const kind =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? 'HEADERS_TOO_LARGE'
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 'REQUEST_TIMEOUT'
        : 'REQUEST_INVALID';
  refuseOnSocket(socket, new OciError(kind, 'malformed HTTP request', { reason: err.code ?? 'parse error' }));
}

/** Writes an OCI error answer straight to a socket Node's HTTP server handed over, then closes it. */
function refuseOnSocket(socket: Duplex, refusal: OciError): void {
  const status = refusal.status;
  const body = ociErrorBody(refusal);
  socket.end(
    [
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}`,
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Docker-Distribution-API-Version: registry/2.0',
      'Connection: close',
      '',
      body,
    ].join('\r\n'),
  );
}

export async function listen(server: http.Server, addr: string): Promise<AddressInfo> {
  const { host, port } = parseAddr(addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}

/** A request listener that knows when every request it started has been handled. */
export interface TrackedListener {
  listener: RequestListener;
  /** Resolves once no request is being handled. */
  settled(): Promise<void>;
}

export function trackRequests(handle: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>): TrackedListener {
  let active = 0;
  let waiters: (() => void)[] = [];
  const settle = (): void => {
    active -= 1;
    if (active > 0) return;
    for (const wake of waiters) wake();
    waiters = [];
  };
  return {
    listener(req, res) {
      active += 1;
      handle(req, res).then(settle, settle);
    },
    settled: () => (active === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
  };
}

/**
 * Stops accepting connections and lets requests in flight finish; connections are closed as
 * they turn idle, and all of them after `timeoutMs`. Resolves when the last one is closed.
 */
export function drain(server: http.Server, timeoutMs: number): Promise<{ forced: boolean }> {
  return new Promise((resolve) => {
    let forced = false;
    const force = setTimeout(() => {
      forced = true;
      server.closeAllConnections();
    }, timeoutMs);
    // A keep-alive connection whose request finished while draining is closed at once.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    server.close(() => {
      clearTimeout(force);
      clearInterval(sweep);
      resolve({ forced });
    });
    server.closeIdleConnections();
  });
}
