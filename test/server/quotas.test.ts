// Per-project storage quotas over HTTP: set by registry admins only, shown with the usage, and
// enforced on upload completion and cross-repository mounts (403 DENIED with the figures,
// nothing linked); a blob the project already holds adds nothing.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { basic, createProject, writeHtpasswd } from '../helpers/auth.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { blobOf, OCI_LAYER, makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { randomBytes } from 'node:crypto';

let dir: string;
let registry: TestRegistry;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-quota-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw', dev: 'dev-pw' });
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  await createProject(registry.url, ['root', 'root-pw'], 'q', { public: false, members: { dev: 'admin' } });
  await createProject(registry.url, ['root', 'root-pw'], 'other', { public: false, members: { dev: 'admin' } });
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const blob = (bytes: number) => blobOf(randomBytes(bytes), OCI_LAYER);

function setQuota(user: [string, string], quotaBytes: number | null | string): Promise<Response> {
  return fetch(`${registry.url}/api/v1/projects/q`, {
    method: 'PATCH',
    headers: { Authorization: basic(...user), 'Content-Type': 'application/json' },
    body: JSON.stringify({ quotaBytes }),
  });
}

async function project(): Promise<{ quotaBytes: number | null; usedBytes: number }> {
  const res = await fetch(`${registry.url}/api/v1/projects/q`, { headers: { Authorization: basic('dev', 'dev-pw') } });
  return (await res.json()) as { quotaBytes: number | null; usedBytes: number };
}

test.serial('only registry admins set quotas; GET shows quota and usage', async (t) => {
  const refused = await setQuota(['dev', 'dev-pw'], 1000);
  t.is(refused.status, 403);
  t.is(((await refused.json()) as OciErrorBody).errors[0]?.code, 'DENIED');
  t.is((await setQuota(['root', 'root-pw'], -1)).status, 400);
  t.is((await setQuota(['root', 'root-pw'], 1.5)).status, 400);
  t.is((await setQuota(['root', 'root-pw'], 'lots')).status, 400);
  const set = await setQuota(['root', 'root-pw'], 1000);
  t.is(set.status, 200);
  t.is(((await set.json()) as { quotaBytes: number }).quotaBytes, 1000);
  t.deepEqual(await project().then((p) => [p.quotaBytes, p.usedBytes]), [1000, 0]);
});

test.serial('uploads past the quota are refused with the figures; nothing is linked', async (t) => {
  const client = createClient(registry.url, { Authorization: basic('dev', 'dev-pw') });
  const first = blob(600);
  t.is((await client.pushBlob('q/app', first)).status, 201);
  t.is((await project()).usedBytes, 600);

  // Monolithic and chunked uploads alike.
  const second = blob(500);
  for (const push of [() => client.pushBlob('q/app', second), () => client.pushChunked('q/team/app', second, 200)]) {
    const res = await push();
    t.is(res.status, 403);
    const error = ((await res.json()) as OciErrorBody).errors[0]!;
    t.is(error.code, 'DENIED');
    t.regex(error.message, /quota exceeded: project q uses 600 of 1000 bytes; this blob needs 500 more/);
    t.deepEqual(error.detail, { project: 'q', usedBytes: 600, quotaBytes: 1000, blobBytes: 500 });
  }
  t.is((await client.request(`/v2/q/app/blobs/${second.digest}`, { method: 'HEAD' })).status, 404);
  t.is((await client.request(`/v2/q/team/app/blobs/${second.digest}`, { method: 'HEAD' })).status, 404);
  t.is((await project()).usedBytes, 600);

  // What fits still goes in; a blob the project already holds adds nothing, in any repository.
  t.is((await client.pushBlob('q/app', blob(400))).status, 201);
  t.is((await project()).usedBytes, 1000);
  t.is((await client.pushBlob('q/app', first)).status, 201);
  t.is((await client.pushBlob('q/second', first)).status, 201);
  const mounted = await client.request(`/v2/q/third/blobs/uploads/?mount=${first.digest}&from=q/app`, { method: 'POST' });
  t.is(mounted.status, 201);
  t.is((await project()).usedBytes, 1000);
});

test.serial('a mount from another project past the quota is refused, and manifests count', async (t) => {
  const client = createClient(registry.url, { Authorization: basic('dev', 'dev-pw') });
  const elsewhere = blob(300);
  t.is((await client.pushBlob('other/app', elsewhere)).status, 201);
  const res = await client.request(`/v2/q/app/blobs/uploads/?mount=${elsewhere.digest}&from=other/app`, { method: 'POST' });
  t.is(res.status, 403);
  const error = ((await res.json()) as OciErrorBody).errors[0]!;
  t.is(error.code, 'DENIED');
  t.regex(error.message, /uses 1000 of 1000 bytes; this blob needs 300 more/);
  t.is((await client.request(`/v2/q/app/blobs/${elsewhere.digest}`, { method: 'HEAD' })).status, 404);

  // Raised quota: the image goes in, and its manifest counts in the usage.
  t.is((await setQuota(['root', 'root-pw'], 100_000)).status, 200);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('q/app', image, 'v1')).status, 201);
  t.is((await project()).usedBytes, 1000 + image.config.size + image.layers[0]!.size + image.manifest.size);

  // No quota: nothing is refused.
  t.is((await setQuota(['root', 'root-pw'], null)).status, 200);
  t.is((await project()).quotaBytes, null);
  t.is((await client.pushBlob('q/app', blob(200_000))).status, 201);
});
