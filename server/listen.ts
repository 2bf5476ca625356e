// The HTTP(S) server around the app: TLS from REGISTRY_HTTP_TLS_*, and timeouts fit for large
// layers over slow links (no whole-request deadline, but headers must arrive promptly).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Config } from './config.js';
import { parseAddr } from './config.js';

export type RequestListener = http.RequestListener;

export function createHttpServer(config: Config, listener: RequestListener): http.Server {
  const server = config.http.tls
    ? https.createServer({ cert: readFileSync(config.http.tls.certificate), key: readFileSync(config.http.tls.key) }, listener)
    : http.createServer(listener);
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;
  return server;
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
