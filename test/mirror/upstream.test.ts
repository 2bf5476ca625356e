// The upstream client against a hostile or broken upstream (a real HTTP server on loopback): what
// its token endpoint, tag list or extension API answer is the upstream's business, and whatever it
// is, the client fails with a named upstream error (502 through the registry), never a JSON or
// type error of its own (a 500), and never sends a malformed token back in a header.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import fc from 'fast-check';
import { createUpstream, UpstreamError, UpstreamUnavailableError } from '../../mirror/upstream.js';
import { listenForTest } from '../helpers/loopback-server.js';
import { createClient } from '../helpers/oci-client.js';
import { startTestRegistry } from '../helpers/registry.js';

interface Hostile {
  url: string;
  /** What the token endpoint, the tag list and the extension API answer (200, this body). */
  body: string;
  /** Authorization headers the protected paths received. */
  authorizations: string[];
  close(): Promise<void>;
}

/** A registry that asks for a Bearer token, and answers `body` from its token endpoint and JSON APIs. */
async function startHostile(): Promise<Hostile> {
  const hostile: Hostile = { url: '', body: '', authorizations: [], close: async () => undefined };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(hostile.body);
      return;
    }
    if (req.headers.authorization === undefined) {
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${hostile.url}/token",service="hostile"` }).end();
      return;
    }
    hostile.authorizations.push(req.headers.authorization);
    if (url.pathname.endsWith('/tags/list') || url.pathname.startsWith('/extensions/')) {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(hostile.body);
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hostile.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hostile.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return hostile;
}

/** Undefined when the call succeeded; otherwise the error, which must be the upstream's. */
async function failure(call: () => Promise<unknown>): Promise<Error | undefined> {
  try {
    await call();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

test('token endpoint answers that are not JSON, not a token, or not sendable are named upstream errors', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const cases: [string, RegExp][] = [
    ['<html>not json', /token endpoint answer is not JSON/],
    ['null', /sent no token/],
    ['{"token": {"nested": 1}}', /malformed token/],
    ['{"token": "abc\\r\\nX-Injected: 1"}', /malformed token/],
    ['{"access_token": "ok-token", "expires_in": "soon"}', /^$/],
  ];
  for (const [body, expected] of cases) {
    hostile.body = body;
    // A client per case: tokens are kept per scope.
    const err = await failure(() => createUpstream({ url: hostile.url, timeoutMs: 5000 }).manifest('app', 'v1'));
    if (expected.source === '^$') t.is(err, undefined, body);
    else {
      t.true(err instanceof UpstreamError, `${body}: ${String(err)}`);
      t.regex(err?.message ?? '', expected, body);
    }
  }
  t.false(
    hostile.authorizations.some((h) => /[\r\n]/.test(h)),
    'no header carried a line break',
  );
  t.true(hostile.authorizations.includes('Bearer ok-token'));
});

test('whatever a token endpoint, tag list or extension API answers, the client fails only with upstream errors', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const bodies = fc.oneof(
    fc.string(),
    fc.json(),
    fc.jsonValue().map((v) => JSON.stringify({ token: v, access_token: v, tags: v, expires_in: v })),
  );
  await fc.assert(
    fc.asyncProperty(bodies, async (body) => {
      hostile.body = body;
      const upstream = createUpstream({ url: hostile.url, timeoutMs: 5000 });
      for (const call of [
        () => upstream.manifest('app', 'v1'),
        () => upstream.tags('app'),
        () => upstream.getJson('/extensions/v2/{path}/signatures/sha256:0', 'app', 1024 * 1024),
      ]) {
        const err = await failure(call);
        if (err && !(err instanceof UpstreamError) && !(err instanceof UpstreamUnavailableError)) {
          throw new Error(`${JSON.stringify(body)}: ${err.name}: ${err.message}`);
        }
      }
      if (hostile.authorizations.some((h) => /[^\x21-\x7e ]/.test(h)))
        throw new Error(`sent a malformed header for ${JSON.stringify(body)}`);
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('a tag list keeps only names the tag grammar allows: a mirror run stores the tags it copies', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const hostileNames = ['a","b', '../../x', '', '-dash', '.dot', 'x'.repeat(129), 'tab\there', 'ünï', 'quote"', 'back\\slash'];
  hostile.body = JSON.stringify({ token: 'ok', tags: ['v1', ...hostileNames, 'latest', 'x'.repeat(128)] });
  t.deepEqual((await createUpstream({ url: hostile.url, timeoutMs: 5000 }).tags('app')).tags, ['v1', 'latest', 'x'.repeat(128)]);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.string({ unit: 'binary', maxLength: 140 }), { maxLength: 20 }), async (names) => {
      hostile.body = JSON.stringify({ token: 'ok', tags: names });
      const { tags: listed } = await createUpstream({ url: hostile.url, timeoutMs: 5000 }).tags('app');
      t.deepEqual(
        listed,
        names.filter((n) => /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/.test(n)),
      );
    }),
    { numRuns: 100 },
  );
});

test('through the registry, a token endpoint that answers garbage is 502 UPSTREAM_FAILED, not a 500', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  hostile.body = '<html>maintenance</html>';
  const signet = await startTestRegistry();
  t.teardown(() => signet.close());
  const created = await fetch(`${signet.url}/api/v1/projects`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'hostile', mirror: { upstream: hostile.url } }),
  });
  t.is(created.status, 201);
  const res = await createClient(signet.url).getManifest('hostile/app', 'v1');
  t.is(res.status, 502);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  t.is(body.errors[0]?.code, 'UPSTREAM_FAILED');
  t.regex(body.errors[0]?.message ?? '', /token endpoint answer is not JSON/);
});

test('an upstream that answers wrongly (a redirect loop, to file: or ftp:, headers past the bound) is an upstream error, not an outage', async (t) => {
  // As 503 these let a cached copy stand in and were logged as an unreachable upstream; they are
  // the upstream's doing, 502 UPSTREAM_FAILED (adversarial testing).
  const server = http.createServer((req, res) => {
    const repository = /^\/v2\/([^/]+)\//.exec(req.url ?? '')?.[1];
    if (repository === 'loop')
      res.writeHead(302, { Location: req.url === '/v2/loop/manifests/v1' ? '/v2/loop/manifests/v2' : '/v2/loop/manifests/v1' });
    else if (repository === 'file') res.writeHead(302, { Location: 'file:///etc/passwd' });
    else if (repository === 'ftp') res.writeHead(302, { Location: 'ftp://example.com/x' });
    else if (repository === 'fat') res.writeHead(200, { 'X-Fat': 'x'.repeat(100_000) });
    else res.writeHead(404);
    res.end();
  });
  const upstream = createUpstream({ url: await listenForTest(t, server), timeoutMs: 5000 });
  for (const repository of ['loop', 'file', 'ftp', 'fat']) {
    const err = await failure(() => upstream.manifest(repository, 'v1'));
    t.true(err instanceof UpstreamError, `${repository}: ${String(err)}`);
    t.false(err instanceof UpstreamUnavailableError, repository);
  }
});
