import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { RegistryResponse } from '../../server/response.js';

const COMMON = ['X-Common', 'yes', 'X-Also', 'too'];

/** A server whose every response carries COMMON, answering with `handle`; the raw header lines of one GET. */
async function answerOf(
  handle: (res: RegistryResponse) => void,
  method = 'GET',
): Promise<{ status: number; lines: string[]; body: string }> {
  const server = http.createServer({ ServerResponse: RegistryResponse }, (_req, res) => {
    res.setCommonHeaders(COMMON);
    handle(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { method });
    const lines: string[] = [];
    res.headers.forEach((value, name) => lines.push(`${name}: ${value}`));
    return { status: res.status, lines, body: await res.text() };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('a head written as one list carries the common headers and the list', async (t) => {
  const { status, lines, body } = await answerOf((res) => {
    res.writeHead(201, ['X-Own', '1', 'Content-Length', '2']);
    res.end('ok');
  });
  t.is(status, 201);
  t.is(body, 'ok');
  for (const line of ['x-common: yes', 'x-also: too', 'x-own: 1', 'content-length: 2']) t.true(lines.includes(line), line);
});

test('headers set one by one get the common ones too, and a common one the handler set stays as it set it', async (t) => {
  const { lines } = await answerOf((res) => {
    res.setHeader('X-Common', 'mine');
    res.statusCode = 202;
    res.end();
  });
  t.true(lines.includes('x-common: mine'));
  t.false(
    lines.some((l) => l.includes('yes')),
    'not sent twice',
  );
  t.true(lines.includes('x-also: too'));
});

test('a value Node refuses leaves the head unwritten, and the answer written after it still carries the common headers', async (t) => {
  const { status, lines } = await answerOf((res) => {
    t.throws(() => res.writeHead(200, ['X-Bad', 'line\r\nbreak']), { code: 'ERR_INVALID_CHAR' });
    t.false(res.headersSent);
    res.writeHead(500, ['Content-Length', '0']);
    res.end();
  });
  t.is(status, 500);
  t.true(lines.includes('x-common: yes'));
  t.false(lines.some((l) => l.startsWith('x-bad')));
});

/** A server that holds its first `count` requests and hands them to `handle` together; the answers' bodies (or errors) in request order. */
async function heldAnswers(count: number, handle: (held: RegistryResponse[]) => void): Promise<(string | Error)[]> {
  const held: RegistryResponse[] = [];
  const server = http.createServer({ ServerResponse: RegistryResponse }, (req, res) => {
    held[Number(req.url!.slice(1))] = res;
    if (held.filter(Boolean).length === count) handle(held);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return await Promise.all(
      Array.from({ length: count }, (_, i) =>
        fetch(`${base}/${i}`).then(
          (res) => res.text(),
          (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
        ),
      ),
    );
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

test('answers ended soon are written together when the turn of the event loop ends, not one by one', async (t) => {
  const bodies = await heldAnswers(3, (held) => {
    held.forEach((res, i) => {
      res.writeHead(200, ['Content-Length', '2']);
      res.endSoon(Buffer.from(`a${i}`));
    });
    // Nothing is written while the turn's handlers run...
    t.true(held.every((res) => res.endingSoon && !res.writableEnded));
    // ...and everything once they are done.
    setImmediate(() => t.true(held.every((res) => !res.endingSoon && res.writableEnded)));
  });
  t.deepEqual(bodies, ['a0', 'a1', 'a2']);
});

test('an answer whose client left before its turn ended keeps none of the others unwritten', async (t) => {
  const bodies = await heldAnswers(3, (held) => {
    held.forEach((res, i) => {
      res.writeHead(200, ['Content-Length', '2']);
      res.endSoon(Buffer.from(`a${i}`));
    });
    held[1]!.socket!.destroy();
  });
  t.is(bodies[0], 'a0');
  t.true(bodies[1] instanceof Error);
  t.is(bodies[2], 'a2');
});

test('a HEAD ended soon announces its length and sends no body', async (t) => {
  const { status, lines, body } = await answerOf((res) => {
    res.writeHead(200, ['Content-Length', '2048']);
    res.endSoon();
  }, 'HEAD');
  t.is(status, 200);
  t.true(lines.includes('content-length: 2048'));
  t.is(body, '');
});
