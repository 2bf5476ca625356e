// No credential reaches the logs: the registry's own logger (server/logging.ts, at trace level)
// writes to a captured stream while requests carry Basic credentials, right and wrong, and
// query strings with secrets in them.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import test from 'ava';
import { createLogger } from '../../server/logging.js';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { randomLayer } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const PASSWORD = 'S3cret-Pa55word-7f3a';
const WRONG = 'Wr0ng-Guess-91c2';
const QUERY_SECRET = 'hunter2-in-the-query';

let dir: string;
let registry: TestRegistry;
const lines: string[] = [];

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-logs-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { alice: PASSWORD });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'alice' },
    log: createLogger('trace', sink),
  });
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('passwords, Authorization headers and query strings never appear in the logs', async (t) => {
  const good = basic('alice', PASSWORD);
  const bad = basic('alice', WRONG);
  const get = (p: string, authorization?: string, init: RequestInit = {}) =>
    fetch(`${registry.url}${p}`, {
      ...init,
      headers: { ...(authorization ? { Authorization: authorization } : {}), ...(init.headers as Record<string, string>) },
    });

  t.is((await get('/v2/', good)).status, 200);
  t.is((await get('/v2/', bad)).status, 401);
  t.is((await get(`/v2/_catalog?n=5&password=${QUERY_SECRET}`, good)).status, 200);
  t.is((await get(`/v2/nope/app/tags/list?token=${QUERY_SECRET}`, good)).status, 404);
  t.is((await get(`/sigstore/a/b@sha256=${'0'.repeat(64)}/signature-1?password=${QUERY_SECRET}`, bad)).status, 404);
  t.is((await get('/api/v1/projects', `Basic ${'!'.repeat(10)}`)).status, 401);
  t.is(
    (await get('/api/v1/projects', good, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"name":"logs"}' }))
      .status,
    201,
  );
  const layer = randomLayer(512);
  const pushed = await get(`/v2/logs/app/blobs/uploads/?digest=${layer.digest}&password=${QUERY_SECRET}`, good, {
    method: 'POST',
    body: new Uint8Array(layer.data),
  });
  t.is(pushed.status, 201);

  const text = lines.join('\n');
  // The capture works: one access-log line per request, with the user but nothing secret.
  t.true(lines.length >= 8, text);
  t.true(lines.some((l) => l.includes('"msg":"request"') && l.includes('"user":"alice"') && l.includes('"reqId"')));
  t.true(lines.some((l) => l.includes('"msg":"invalid credentials"')));
  for (const secret of [PASSWORD, WRONG, QUERY_SECRET, good.slice('Basic '.length), bad.slice('Basic '.length), 'Basic ']) {
    t.false(text.includes(secret), `the logs contain ${secret}`);
  }
  t.false(/authorization/i.test(text), 'an Authorization header was logged');
});
