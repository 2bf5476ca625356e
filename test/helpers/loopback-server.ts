// A test's own HTTP server on a free loopback port, closed with its open connections.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

/** Listens on 127.0.0.1: the server's base URL, and how to close it (open connections included). */
export async function listenOnLoopback(server: http.Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Listens on 127.0.0.1 and closes when the test ends; the server's base URL. */
export async function listenForTest(t: ExecutionContext<unknown>, server: http.Server): Promise<string> {
  const { url, close } = await listenOnLoopback(server);
  t.teardown(close);
  return url;
}
