// Read-only mode for maintenance (storage.maintenance.readonly.enabled, the Go registry's name):
// every write on every route is 405 UNSUPPORTED, as the Go registry answers; reads go on.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let dir: string;
let registry: TestRegistry;
const image = makeImage({ layers: 2 });
let uploadLocation: string;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-readonly-'));
  // Content written while writable, then the same data served read-only.
  const writable = await startTestRegistry({ dataDir: dir });
  const client = createClient(writable.url);
  const json = { 'Content-Type': 'application/json' };
  await client.request('/api/v1/projects', { method: 'POST', headers: json, body: '{"name":"ro","public":true}' });
  const put = await client.pushImage('ro/app', image, 'v1');
  if (put.status !== 201) throw new Error(`seeding failed: ${put.status}`);
  uploadLocation = (await client.request('/v2/ro/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
  await writable.close();
  registry = await startTestRegistry({ dataDir: dir, env: { REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true' } });
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('every write answers 405 UNSUPPORTED with an OCI error body', async (t) => {
  const layer = image.layers[0]!;
  const sig = `/sigstore/ro/app@sha256=${image.manifest.digest.slice(7)}/signature-1`;
  const writes: [string, string][] = [
    ['POST', '/v2/ro/app/blobs/uploads/'],
    ['POST', `/v2/ro/app/blobs/uploads/?digest=${layer.digest}`],
    ['POST', `/v2/ro/other/blobs/uploads/?mount=${layer.digest}&from=ro/app`],
    ['PATCH', uploadLocation],
    ['PUT', `${uploadLocation}?digest=${layer.digest}`],
    ['DELETE', uploadLocation],
    ['PUT', '/v2/ro/app/manifests/v2'],
    ['DELETE', '/v2/ro/app/manifests/v1'],
    ['DELETE', `/v2/ro/app/manifests/${image.manifest.digest}`],
    ['DELETE', `/v2/ro/app/blobs/${layer.digest}`],
    ['PUT', sig],
    ['DELETE', sig],
    ['PUT', `/extensions/v2/ro/app/signatures/${image.manifest.digest}`],
    ['POST', '/api/v1/projects'],
    ['PATCH', '/api/v1/projects/ro'],
    ['DELETE', '/api/v1/projects/ro'],
    ['PUT', '/api/v1/projects/ro/members/bob'],
    ['DELETE', '/api/v1/projects/ro/members/bob'],
    ['POST', '/api/v1/projects/ro/keys'],
    ['DELETE', '/api/v1/projects/ro/keys/1'],
  ];
  for (const [method, url] of writes) {
    const res = await fetch(`${registry.url}${url}`, { method, body: ['PUT', 'PATCH', 'POST'].includes(method) ? '{}' : null });
    t.is(res.status, 405, `${method} ${url}`);
    const body = (await res.json()) as OciErrorBody;
    t.is(body.errors[0]?.code, 'UNSUPPORTED', `${method} ${url}`);
    t.regex(body.errors[0]?.message ?? '', /read-only/);
  }
});

test('reads keep working and the content is unchanged', async (t) => {
  const client = createClient(registry.url);
  const manifest = await client.getManifest('ro/app', 'v1');
  t.is(manifest.status, 200);
  t.deepEqual(Buffer.from(await manifest.arrayBuffer()), image.manifest.data);
  for (const blob of [image.config, ...image.layers]) {
    const res = await client.request(`/v2/ro/app/blobs/${blob.digest}`);
    t.is(res.status, 200);
    t.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data);
  }
  t.deepEqual(await (await client.request('/v2/ro/app/tags/list')).json(), { name: 'ro/app', tags: ['v1'] });
  t.is((await client.request('/v2/_catalog')).status, 200);
  t.is((await client.request(`/v2/ro/app/referrers/${image.manifest.digest}`)).status, 200);
  t.is((await client.request(uploadLocation)).status, 204);
  t.is((await client.request(`/extensions/v2/ro/app/signatures/${image.manifest.digest}`)).status, 200);
  t.is((await client.request('/api/v1/projects/ro')).status, 200);
  t.is((await client.request('/v2/')).status, 200);
  t.is((await client.request('/healthz')).status, 200);
});
