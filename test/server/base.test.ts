import test from 'ava';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
test.before(async () => {
  registry = await startTestRegistry();
});
test.after.always(() => registry?.close());

test('GET /v2/ answers 200 with the API version header', async (t) => {
  const res = await fetch(`${registry.url}/v2/`);
  t.is(res.status, 200);
  t.is(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  t.deepEqual(await res.json(), {});
});

test('unknown endpoints answer a JSON OCI error, with the API version header', async (t) => {
  const res = await fetch(`${registry.url}/v2/foo/unknown/thing`);
  t.is(res.status, 404);
  t.is(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  const body = (await res.json()) as { errors: { code: string }[] };
  t.is(body.errors[0]?.code, 'NOT_FOUND');
});

test('a known path with an unsupported method is 405 UNSUPPORTED', async (t) => {
  const res = await fetch(`${registry.url}/v2/foo/tags/list`, { method: 'POST' });
  t.is(res.status, 405);
  const body = (await res.json()) as { errors: { code: string }[] };
  t.is(body.errors[0]?.code, 'UNSUPPORTED');
});

test('HEAD errors carry the status and no body', async (t) => {
  const res = await fetch(`${registry.url}/v2/nothing/here/manifests/latest`, { method: 'HEAD' });
  t.is(res.status, 404);
  t.is(await res.text(), '');
});

test('routes are found whichever section of the table holds them: a lookaside path under /v2', async (t) => {
  // Routes are matched by sections of the path (server/routes.ts): a lookaside path that a
  // registry path prefixes is still the lookaside's, and the registry's routes beside it are
  // still the registry's.
  const moved = await startTestRegistry({ env: { REGISTRY_SIGNATURES_LOOKASIDE_PATH: '/v2/sigstore' } });
  t.teardown(() => moved.close());
  const signature = `${moved.url}/v2/sigstore/team/app@sha256=${'a'.repeat(64)}/signature-1`;
  const read = await fetch(signature);
  t.is(read.status, 404);
  t.is(await read.text(), '', "the lookaside's bare 404, not the registry's JSON one");
  t.is((await fetch(signature, { method: 'POST' })).status, 405, 'a known path with another method');
  const tags = await fetch(`${moved.url}/v2/sigstore/app/tags/list`);
  t.is(tags.status, 404);
  t.is(((await tags.json()) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_UNKNOWN');
  t.is((await fetch(`${moved.url}/v2/`)).status, 200);
  t.is((await fetch(`${moved.url}/healthz`)).status, 200);
});
