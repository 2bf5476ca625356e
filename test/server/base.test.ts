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
