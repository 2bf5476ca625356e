// Two replicas of a token-mode registry on one PostgreSQL database: a token one issues is accepted
// by the other (they share the signing key the first one made), and a robot revoked on one is
// refused by the other at once. Caches are long (60 s) so only the change notifications can
// explain the second.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { testWithCommands } from '../helpers/env.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const test = testWithCommands('token mode on replicas', [], { postgres: true });
let database: TestDatabase;
let dir: string;
let a: TestRegistry;
let b: TestRegistry;
const USERS = { root: 'root-pw' };

test.before(async () => {
  database = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-token-replicas-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  const env = {
    REGISTRY_AUTH: 'token',
    REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
    REGISTRY_AUTH_ADMINS: 'root',
    REGISTRY_CACHE_TTL: '60',
    // As behind a load balancer on this address: its X-Forwarded-Proto is believed.
    REGISTRY_HTTP_TRUSTEDPROXIES: '127.0.0.1',
    // One blob store for both, as S3 would be.
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
  };
  // Started together: both race to make the signing key, and must end up with one.
  [a, b] = await Promise.all([
    startTestRegistry({ databaseUrl: database.url, env }),
    startTestRegistry({ databaseUrl: database.url, env }),
  ]);
  const root = createClient(a.url, { Authorization: basic('root', USERS.root) });
  await root.request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'rep', public: false }) });
  await root.pushImage('rep/app', makeImage({ layers: 1 }), 'v1');
});
test.after.always(async () => {
  await a?.close();
  await b?.close();
  await database?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function token(on: TestRegistry, credentials: [string, string], scope: string): Promise<string> {
  const res = await fetch(`${on.url}/token?service=signet&scope=${encodeURIComponent(scope)}`, {
    headers: { Authorization: basic(...credentials) },
  });
  if (res.status !== 200) throw new Error(`token: ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

test('a token issued by one replica is accepted by the other', async (t) => {
  const fromA = await token(a, ['root', USERS.root], 'repository:rep/app:pull');
  const fromB = await token(b, ['root', USERS.root], 'repository:rep/app:pull');
  for (const [issued, on] of [
    [fromA, b],
    [fromB, a],
  ] as const) {
    const res = await createClient(on.url, { Authorization: `Bearer ${issued}` }).getManifest('rep/app', 'v1');
    t.is(res.status, 200);
  }
  const keys = await a.registry.db.query('SELECT kid FROM token_signing_keys');
  t.is(keys.length, 1);
});

test('a robot revoked on one replica is refused by the other at once, tokens and Basic alike', async (t) => {
  const root = createClient(a.url, { Authorization: basic('root', USERS.root) });
  const created = await root.request('/api/v1/projects/rep/robots', {
    method: 'POST',
    body: JSON.stringify({ name: 'ci', role: 'guest', expiresInDays: 1 }),
  });
  const robot = (await created.json()) as { name: string; secret: string };
  const issued = await token(a, [robot.name, robot.secret], 'repository:rep/app:pull');
  const onB = createClient(b.url, { Authorization: `Bearer ${issued}` });
  const basicOnB = createClient(b.url, { Authorization: basic(robot.name, robot.secret) });
  t.is((await onB.getManifest('rep/app', 'v1')).status, 200);
  t.is((await basicOnB.getManifest('rep/app', 'v1')).status, 200);

  t.is((await root.request('/api/v1/projects/rep/robots/ci', { method: 'DELETE' })).status, 204);
  // The notification travels through PostgreSQL: allow it a moment, far below the cache's 60 s.
  let status = 200;
  for (let i = 0; i < 50 && status === 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    status = (await onB.getManifest('rep/app', 'v1')).status;
  }
  t.is(status, 401);
  t.is((await basicOnB.getManifest('rep/app', 'v1')).status, 401);
});

test('behind a trusted proxy that terminated TLS, the realm is https', async (t) => {
  const res = await fetch(`${a.url}/v2/`, { headers: { 'X-Forwarded-Proto': 'https' } });
  t.is(res.headers.get('www-authenticate'), `Bearer realm="https://${new URL(a.url).host}/token",service="signet"`);
});
