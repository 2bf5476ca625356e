import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { RegistryResponse } from '../../server/response.js';

const COMMON = ['X-Common', 'yes', 'X-Also', 'too'];

/** A server whose every response carries COMMON, answering with `handle`; the raw header lines of one GET. */
async function answerOf(handle: (res: RegistryResponse) => void): Promise<{ status: number; lines: string[]; body: string }> {
  const server = http.createServer({ ServerResponse: RegistryResponse }, (_req, res) => {
    res.setCommonHeaders(COMMON);
    handle(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
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
