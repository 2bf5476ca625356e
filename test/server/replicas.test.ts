// Two replicas — two `signet serve` processes on their own ports — on one PostgreSQL database and
// one S3 bucket (s3rver on loopback), as the scale-out deployment runs them: no state may live only
// in one replica's memory. Caches are long here (60 s) so that only change notifications can
// explain a replica seeing another's write promptly.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { testWithCommands } from '../helpers/env.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, makeImage } from '../helpers/oci-layout.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { startS3rver, type TestS3 } from '../helpers/s3rver.js';
import { makeKey, makeKeyWithSigningSubkey, payload, revokeSigningSubkey, sign } from '../helpers/signing.js';
import { mergeOpenpgpKey } from '../../sigstore/keys.js';

import { sleep } from '../helpers/wait.js';

const test = testWithCommands('replicas on shared PostgreSQL', [], { postgres: true });
let database: TestDatabase;
let s3: TestS3;
let dir: string;
let a: ServerProcess;
let b: ServerProcess;
const USERS = { root: 'root-pw' };
const on = (r: ServerProcess) => createClient(r.url, { Authorization: basic('root', USERS.root) });
const hostOf = (r: ServerProcess): string => new URL(r.url).host;

test.before(async () => {
  database = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-replicas-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  s3 = await startS3rver();
  const env = s3.registryEnv({
    REGISTRY_CACHE_TTL: '60',
    REGISTRY_AUTH: 'htpasswd',
    REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
    REGISTRY_AUTH_ADMINS: 'root',
  });
  const processEnv = { ...env, REGISTRY_DATABASE_URL: database.url, REGISTRY_LOG_ACCESSLOG_DISABLED: 'true' };
  [a, b] = await Promise.all([startServerProcess(processEnv), startServerProcess(processEnv)]);
  await on(a).request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'rep', public: false }) });
});
test.after.always(async () => {
  await a?.kill('SIGTERM');
  await b?.kill('SIGTERM');
  await database?.drop();
  await s3?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The key the registry should hold after merging `update` into `stored`. */
async function mergedKey(stored: Uint8Array, update: Uint8Array): Promise<Uint8Array> {
  const merged = await mergeOpenpgpKey(Buffer.from(stored), Buffer.from(update));
  if (!merged) throw new Error('the update merged nothing');
  return merged.material;
}

/** Notifications are asynchronous (milliseconds): poll briefly, far below the 60 s cache TTL. */
async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean): Promise<T> {
  let value = await read();
  for (let i = 0; i < 50 && !ok(value); i++) {
    await sleep(20);
    value = await read();
  }
  return value;
}

test.serial('an upload moves between replicas: POST on A, PATCH on B, PUT on A', async (t) => {
  const data = randomBytes(300_000);
  const blob = blobOf(data, 'application/octet-stream');
  const start = await on(a).request('/v2/rep/up/blobs/uploads/', { method: 'POST' });
  const location = start.headers.get('location')!;
  const first = await on(b).request(location, {
    method: 'PATCH',
    body: new Uint8Array(data.subarray(0, 100_000)),
    headers: { 'Content-Range': '0-99999' },
  });
  t.is(first.status, 202);
  const second = await on(a).request(location, {
    method: 'PATCH',
    body: new Uint8Array(data.subarray(100_000)),
    headers: { 'Content-Range': `100000-${data.length - 1}` },
  });
  t.is(second.status, 202);
  t.is((await on(b).request(`${location}?digest=${blob.digest}`, { method: 'PUT' })).status, 201);
  for (const r of [a, b]) {
    const got = await on(r).request(`/v2/rep/up/blobs/${blob.digest}`);
    t.deepEqual(Buffer.from(await got.arrayBuffer()), data);
  }
});

test.serial('a tag moved on A is served moved by B at once, though B had it cached', async (t) => {
  const one = makeImage({ layers: 1 });
  const two = makeImage({ layers: 1 });
  await on(a).pushImage('rep/app', one, 'latest');
  const cached = await on(b).getManifest('rep/app', 'latest');
  t.is(cached.headers.get('docker-content-digest'), one.manifest.digest);
  await on(a).pushImage('rep/app', two, 'latest');
  const moved = await eventually(
    () => on(b).getManifest('rep/app', 'latest'),
    (res) => res.headers.get('docker-content-digest') === two.manifest.digest,
  );
  t.is(moved.headers.get('docker-content-digest'), two.manifest.digest);
  await on(a).request(`/v2/rep/app/manifests/${two.manifest.digest}`, { method: 'DELETE' });
  const gone = await eventually(
    () => on(b).getManifest('rep/app', 'latest'),
    (res) => res.status === 404,
  );
  t.is(gone.status, 404);
});

// What the database itself announces (storage/migrations/012_change_notices.postgres.sql): a write
// that no replica announced, as one whose replica died between its commit and its notice, or an
// operator's fix in psql, reaches B's cache all the same, though B keeps entries for 60 s here.
test.serial('a tag moved straight in the database is served moved by B at once, though B had it cached', async (t) => {
  const one = makeImage({ layers: 1 });
  const two = makeImage({ layers: 1 });
  await on(a).pushImage('rep/direct', one, 'latest');
  await on(a).pushImage('rep/direct', two, 'other');
  const cached = await on(b).getManifest('rep/direct', 'latest');
  t.is(cached.headers.get('docker-content-digest'), one.manifest.digest);
  const sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
  t.teardown(() => sql.end());
  await sql.query(
    `UPDATE tags SET manifest_digest = $1 WHERE name = 'latest' AND repository_id = (SELECT id FROM repositories WHERE name = 'rep/direct')`,
    [two.manifest.digest],
  );
  const moved = await eventually(
    () => on(b).getManifest('rep/direct', 'latest'),
    (res) => res.headers.get('docker-content-digest') === two.manifest.digest,
  );
  t.is(moved.headers.get('docker-content-digest'), two.manifest.digest);
});

test.serial('a key removed on A stops opening the gate on B', async (t) => {
  const key = await makeKey();
  await on(a).request('/api/v1/projects/rep/keys', { method: 'POST', body: new Uint8Array(key.publicBinary) });
  await on(a).request('/api/v1/projects/rep', { method: 'PATCH', body: JSON.stringify({ signedOnly: true }) });
  const image = makeImage({ layers: 1 });
  await on(a).pushImage('rep/signed', image, 'v1');
  const sig = await sign(key, payload(image.manifest.digest, `${hostOf(b)}/rep/signed:v1`));
  const put = await on(a).request(`/extensions/v2/rep/signed/signatures/${image.manifest.digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${image.manifest.digest}@${'1'.repeat(32)}`,
      type: 'atomic',
      content: Buffer.from(sig).toString('base64'),
    }),
  });
  t.is(put.status, 201);
  // The signature names B's host: B serves it.
  t.is(
    (
      await eventually(
        () => on(b).getManifest('rep/signed', 'v1'),
        (r) => r.status === 200,
      )
    ).status,
    200,
  );
  const keys = ((await (await on(a).request('/api/v1/projects/rep/keys')).json()) as { keys: { id: number }[] }).keys;
  await on(a).request(`/api/v1/projects/rep/keys/${keys[0]!.id}`, { method: 'DELETE' });
  const refused = await eventually(
    () => on(b).getManifest('rep/signed', 'v1'),
    (r) => r.status === 412,
  );
  t.is(refused.status, 412);
  await on(a).request('/api/v1/projects/rep', { method: 'PATCH', body: JSON.stringify({ signedOnly: false }) });
});

test.serial('a trusted key updated on A (signing subkey revoked) stops opening the gate on B, and B exports the merged key', async (t) => {
  await on(a).request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'repk', public: false }) });
  const key = await makeKeyWithSigningSubkey();
  t.is((await on(a).request('/api/v1/projects/repk/keys', { method: 'POST', body: new Uint8Array(key.publicBinary) })).status, 201);
  await on(a).request('/api/v1/projects/repk', { method: 'PATCH', body: JSON.stringify({ signedOnly: true }) });
  const image = makeImage({ layers: 1 });
  await on(a).pushImage('repk/signed', image, 'v1');
  const sig = await sign(key, payload(image.manifest.digest, `${hostOf(b)}/repk/signed:v1`), { subkey: true });
  const put = await on(a).request(`/extensions/v2/repk/signed/signatures/${image.manifest.digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${image.manifest.digest}@${'2'.repeat(32)}`,
      type: 'atomic',
      content: Buffer.from(sig).toString('base64'),
    }),
  });
  t.is(put.status, 201);
  t.is(
    (
      await eventually(
        () => on(b).getManifest('repk/signed', 'v1'),
        (r) => r.status === 200,
      )
    ).status,
    200,
  );
  const revoked = await revokeSigningSubkey(key);
  t.is((await on(a).request('/api/v1/projects/repk/keys', { method: 'POST', body: new Uint8Array(revoked.publicBinary) })).status, 200);
  const refused = await eventually(
    () => on(b).getManifest('repk/signed', 'v1'),
    (r) => r.status === 412,
  );
  t.is(refused.status, 412);
  const policy = (await (await on(b).request('/api/v1/projects/repk/policy.json')).json()) as {
    transports: { docker: Record<string, { keyData: string }[]> };
  };
  const exported = Object.values(policy.transports.docker)[0]![0]!.keyData;
  t.deepEqual(Buffer.from(exported, 'base64'), Buffer.from(await mergedKey(key.publicBinary, revoked.publicBinary)));
});

test.serial('concurrent pushes of one blob and one tag through both replicas stay consistent', async (t) => {
  const blob = blobOf(randomBytes(200_000), 'application/octet-stream');
  const results = await Promise.all([a, b, a, b].map((r) => on(r).pushBlob('rep/race', blob)));
  t.deepEqual(
    results.map((r) => r.status),
    [201, 201, 201, 201],
  );
  const images = [makeImage({ layers: 1 }), makeImage({ layers: 1 })];
  await Promise.all(images.map((image, i) => on(i === 0 ? a : b).pushImage('rep/race', image, 'tag')));
  const digests = await Promise.all(
    [a, b].map(async (r) =>
      (
        await eventually(
          () => on(r).getManifest('rep/race', 'tag'),
          (x) => x.status === 200,
        )
      ).headers.get('docker-content-digest'),
    ),
  );
  t.is(digests[0], digests[1]);
  t.true(images.some((i) => i.manifest.digest === digests[0]));
  const got = await on(b).request(`/v2/rep/race/blobs/${blob.digest}`);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), blob.data);
});

test.serial('uploads finishing at once on both replicas never pass the quota together', async (t) => {
  t.is((await on(a).request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'rq', public: false }) })).status, 201);
  const quota = (quotaBytes: number | null) =>
    on(a).request('/api/v1/projects/rq', {
      method: 'PATCH',
      body: JSON.stringify({ quotaBytes }),
      headers: { 'Content-Type': 'application/json' },
    });
  const blobs = Array.from({ length: 20 }, () => blobOf(randomBytes(100_000), 'application/octet-stream'));
  // Every body is in before any session is finished; half of them finish on each replica.
  const sessions = await Promise.all(
    blobs.map(async (blob, i) => {
      const replica = i % 2 ? a : b;
      const started = await on(replica).request('/v2/rq/race/blobs/uploads/', { method: 'POST' });
      const patched = await on(replica).request(started.headers.get('location')!, { method: 'PATCH', body: new Uint8Array(blob.data) });
      t.is(patched.status, 202);
      return { replica, location: `${patched.headers.get('location')!}?digest=${blob.digest}` };
    }),
  );
  t.is((await quota(150_000)).status, 200);
  // Each replica's project cache (60 s here) learns of the quota by the change notification.
  await sleep(200);
  const statuses = await Promise.all(
    sessions.map(async ({ replica, location }) => (await on(replica).request(location, { method: 'PUT' })).status),
  );
  t.deepEqual(
    statuses.filter((status) => status === 201),
    [201],
    `statuses ${statuses.join(' ')}`,
  );
  t.is(statuses.filter((status) => status === 403).length, 19);
  const usage = (await (await on(b).request('/api/v1/projects/rq')).json()) as { usedBytes: number };
  t.is(usage.usedBytes, 100_000);
});
