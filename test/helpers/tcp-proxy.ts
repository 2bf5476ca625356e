// A TCP proxy on loopback in front of a real server, that can stall: accept connections and hold
// them without a byte either way, as a hung host or a broken middlebox does (the peer accepts and
// never answers). Resuming cuts the held connections and forwards new ones again.
import net from 'node:net';

export interface TcpProxy {
  port: number;
  /** From now on nothing moves: open connections freeze, new ones are accepted and held. */
  stall(): void;
  /** Cuts the held connections; new ones are forwarded again. */
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  let stalled = false;
  const open = new Set<net.Socket>();
  const held = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    open.add(socket);
    socket.once('close', () => {
      open.delete(socket);
      held.delete(socket);
    });
    socket.on('error', () => undefined);
  };
  const server = net.createServer((client) => {
    track(client);
    if (stalled) {
      client.pause();
      held.add(client);
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    stall() {
      stalled = true;
      for (const socket of open) {
        socket.pause();
        // Stop forwarding what was already read: unpipe everything this socket feeds.
        socket.unpipe();
        held.add(socket);
      }
    },
    resume() {
      stalled = false;
      for (const socket of held) socket.destroy();
      held.clear();
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
