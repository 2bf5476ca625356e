// A test's own HTTP server on a free loopback port, closed (open connections included) when the test ends.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';

/** Listens on 127.0.0.1 and closes when the test ends; the server's base URL. */
export async function listenForTest(t: ExecutionContext<unknown>, server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
