// HTTP/1.1 over a bare TCP socket, for what fetch will not send: a Content-Length that lies, a
// body that stalls, bytes after the body. Collects everything the server answers until it closes
// the connection (or a deadline passes) and parses the responses in it.
import http from 'node:http';
import net from 'node:net';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawExchange {
  responses: RawResponse[];
  /** The server closed the connection before the deadline. */
  closed: boolean;
  /** A socket error (ECONNRESET and the like); not a failure by itself. */
  error?: string;
}

export interface RawConnection {
  socket: net.Socket;
  /** Resolves when the server closes the connection, or at the deadline (closed: false). */
  exchange: Promise<RawExchange>;
}

/** Opens a connection and starts collecting; the caller writes. `headRequest`: no body in the first answer. */
export async function openRaw(port: number, options: { timeoutMs?: number; headRequest?: boolean } = {}): Promise<RawConnection> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const chunks: Buffer[] = [];
  let error: string | undefined;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', (err: Error & { code?: string }) => void (error = err.code ?? err.message));
  const exchange = new Promise<RawExchange>((resolve) => {
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks), options.headRequest ?? false), closed, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 10_000);
    socket.once('close', () => finish(true));
  });
  return { socket, exchange };
}

/** Sends `request` (head and body as given) and collects the answers. */
export async function rawRequest(
  port: number,
  request: Buffer | string,
  options: { timeoutMs?: number; headRequest?: boolean; halfClose?: boolean } = {},
): Promise<RawExchange> {
  const { socket, exchange } = await openRaw(port, options);
  socket.write(request);
  if (options.halfClose) socket.end();
  return exchange;
}

/** The head of a request: request line, headers, blank line. */
export function requestHead(method: string, path: string, headers: Record<string, string>): string {
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

export function parseResponses(data: Buffer, headRequest: boolean): RawResponse[] {
  const responses: RawResponse[] = [];
  let offset = 0;
  while (offset < data.length) {
    const end = data.indexOf('\r\n\r\n', offset);
    if (end < 0) break;
    const lines = data.subarray(offset, end).toString('latin1').split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!match) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(match[1]);
    let cursor = end + 4;
    if (status < 200) {
      // 100 Continue and other interim answers have no body; the final answer follows.
      offset = cursor;
      continue;
    }
    let body: Buffer = Buffer.alloc(0);
    const noBody = (headRequest && responses.length === 0) || status === 204 || status === 304;
    if (!noBody && headers['transfer-encoding']?.includes('chunked')) {
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = data.indexOf('\r\n', cursor);
        if (lineEnd < 0) break;
        const size = parseInt(data.subarray(cursor, lineEnd).toString('latin1'), 16);
        cursor = lineEnd + 2;
        if (!(size > 0)) {
          cursor += 2;
          break;
        }
        parts.push(data.subarray(cursor, cursor + size));
        cursor += size + 2;
      }
      body = Buffer.concat(parts);
    } else if (!noBody && headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      body = data.subarray(cursor, cursor + length);
      cursor += length;
    } else if (!noBody) {
      body = data.subarray(cursor);
      cursor = data.length;
    }
    responses.push({ status, headers, body });
    offset = cursor;
  }
  return responses;
}

export interface HeldRequest {
  /** Sends more of the body. */
  write(data: Buffer): void;
  /** Sends the rest of the body and ends the request. */
  end(data?: Buffer): void;
  /** The answer, read whole. */
  answered: Promise<{ status: number; location: string; body: string }>;
}

/**
 * A request whose headers go out at once and whose body the test sends when it chooses: what a
 * slow client looks like while the server has begun handling it.
 */
export function heldRequest(url: URL, method: string, headers: Record<string, string>): HeldRequest {
  const req = http.request(url, { method, headers });
  const answered = new Promise<{ status: number; location: string; body: string }>((resolve, reject) => {
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (piece: string) => (body += piece));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, location: String(res.headers.location ?? ''), body }));
    });
    req.once('error', reject);
  });
  req.flushHeaders();
  return { write: (data) => void req.write(data), end: (data) => void req.end(data), answered };
}
