// NUL bytes where the database would be asked about them: PostgreSQL text cannot hold NUL
// ("invalid byte sequence for encoding UTF8: 0x00"), so a NUL that reached a query was a 500.
// Robot account names with NUL are no robot (401, as any unknown account), a NUL in a `last`
// cursor is a bad query parameter, and a NUL in mirror settings is a bad field of the body.
// Token mode, so that GET and POST /token are there too (Basic credentials work on every route).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createRobots } from '../../auth/robots.js';
import { createPostgresRobotStore } from '../../storage/robot-store.js';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let dir: string;
let registry: TestRegistry;
let robot: { name: string; secret: string };
const root = () => createClient(registry.url, { Authorization: basic('root', 'root-pw') });

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-nul-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw' });
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'token', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  const project = await root().request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 't', public: false }) });
  if (project.status !== 201) throw new Error(`project: ${project.status} ${await project.text()}`);
  const pushed = await root().pushImage('t/app', makeImage({ layers: 1 }), 'v1');
  if (pushed.status !== 201) throw new Error(`push: ${pushed.status} ${await pushed.text()}`);
  const made = await root().request('/api/v1/projects/t/robots', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'ci', role: 'guest', expiresInDays: 1 }),
  });
  if (made.status !== 201) throw new Error(`robot: ${made.status} ${await made.text()}`);
  robot = (await made.json()) as { name: string; secret: string };
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function errorOf(res: Response): Promise<{ code?: string; message?: string; detail?: unknown }> {
  const body = (await res.json()) as OciErrorBody;
  return body.errors[0] ?? {};
}

const NUL_ROBOTS = ['robot$t\u0000+ci', 'robot$t+c\u0000i', 'robot$t+ci\u0000', 'robot$\u0000+ci', 'robot$t+\u0000'];

test('robot account names with NUL are unknown accounts: 401 on every authenticated route, never 500', async (t) => {
  // The control: the robot's own name and secret pass.
  t.is((await fetch(`${registry.url}/v2/`, { headers: { Authorization: basic(robot.name, robot.secret) } })).status, 200);
  for (const user of NUL_ROBOTS) {
    for (const secret of ['x', robot.secret]) {
      const client = createClient(registry.url, { Authorization: basic(user, secret) });
      for (const route of ['/v2/', '/v2/t/app/tags/list', '/api/v1/projects', '/token?service=signet&scope=repository:t/app:pull']) {
        const res = await client.request(route);
        t.is(res.status, 401, `${JSON.stringify(user)} on ${route}`);
        t.is((await errorOf(res)).code, 'UNAUTHORIZED', `${JSON.stringify(user)} on ${route}`);
      }
      const signIn = await fetch(`${registry.url}/api/v1/session`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Signet-Console': '1' },
        body: JSON.stringify({ user, password: secret }),
      });
      t.is(signIn.status, 401, `${JSON.stringify(user)} signing in`);
      t.is((await errorOf(signIn)).code, 'UNAUTHORIZED');
      const oauth = await fetch(`${registry.url}/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'password', service: 'signet', client_id: 'test', username: user, password: secret }),
      });
      t.is(oauth.status, 401, `${JSON.stringify(user)} on POST /token`);
    }
  }
});

test('a robot name outside the grammar reads the store as an unknown robot does (the time tells nothing)', async (t) => {
  const real = createPostgresRobotStore(registry.registry.db);
  const asked: [string, string][] = [];
  const robots = createRobots({
    store: { ...real, find: (project, name) => (asked.push([project, name]), real.find(project, name)) },
    cacheTtlMs: 0,
  });
  for (const user of [...NUL_ROBOTS, 'robot$T+ci', 'robot$t+CI', 'robot$t', 'robot$+ci', `robot$t+${'a'.repeat(65)}`]) {
    const before = asked.length;
    t.is(await robots.verify(user, 'x'), undefined, JSON.stringify(user));
    t.is(asked.length - before, 1, `one read of the store for ${JSON.stringify(user)}`);
    t.false(
      asked.flat().some((text) => text.includes('\u0000')),
      'no NUL reaches the store',
    );
  }
  t.is(await robots.verify('robot$t+nobody', 'x'), undefined);
  t.truthy(await robots.verify(robot.name, robot.secret), 'the real robot still verifies');
});

test('?last= with NUL on the management API tag listings: 400 QUERY_PARAMETER_INVALID, as on /v2/<name>/tags/list', async (t) => {
  for (const route of [
    '/v2/t/app/tags/list?last=%00',
    '/api/v1/projects/t/repositories/app/tags?last=%00',
    '/api/v1/projects/t/repositories/app/tags?n=5&last=a%00',
    '/api/v1/projects/t/repositories/app/trust?last=%00',
    '/api/v1/projects/t/repositories/app/trust?n=5&last=a%00',
  ]) {
    const res = await root().request(route);
    t.is(res.status, 400, route);
    t.is((await errorOf(res)).code, 'QUERY_PARAMETER_INVALID', route);
  }
  // The control: a cursor without NUL still pages.
  for (const route of ['/api/v1/projects/t/repositories/app/tags?last=a', '/api/v1/projects/t/repositories/app/trust?last=a']) {
    const res = await root().request(route);
    t.is(res.status, 200, route);
    t.deepEqual(
      ((await res.json()) as { tags: { name: string }[] }).tags.map((tag) => tag.name),
      ['v1'],
      route,
    );
  }
});

test('mirror settings with NUL: 400 REQUEST_INVALID naming the field, never 500', async (t) => {
  const base = { upstream: 'https://registry.example.com' };
  const cases: [string, Record<string, unknown>][] = [
    ['mirror.username', { ...base, username: 'u\u0000', password: 'p' }],
    ['mirror.password', { ...base, username: 'u', password: 'p\u0000' }],
    ['mirror.sync.rules.tags', { ...base, sync: { rules: [{ repository: 'ubi8/ubi', tags: 'v\u0000*' }], intervalSeconds: 3600 } }],
  ];
  for (const [i, [field, mirror]] of cases.entries()) {
    for (const [method, urlPath, body] of [
      ['POST', '/api/v1/projects', { name: `m${i}`, mirror }],
      ['PATCH', '/api/v1/projects/patched', { mirror }],
    ] as const) {
      if (method === 'PATCH' && i === 0) {
        const made = await root().request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'patched', mirror: base }) });
        t.is(made.status, 201);
      }
      const res = await root().request(urlPath, { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      t.is(res.status, 400, `${method} ${field}`);
      const error = await errorOf(res);
      t.is(error.code, 'REQUEST_INVALID', `${method} ${field}`);
      t.deepEqual(error.detail, { field }, `${method} ${field}`);
      t.regex(error.message ?? '', /NUL/, `${method} ${field}`);
    }
    t.is((await root().request(`/api/v1/projects/m${i}`)).status, 404, 'no project was made');
  }
  // URLs are parsed (a NUL in a path is percent-encoded, in a host refused) and the signed prefix
  // has a grammar: none of them gets a NUL to the database.
  for (const [i, [mirror, status]] of (
    [
      [{ upstream: 'https://registry.example.com/a\u0000b' }, 400],
      [{ upstream: 'https://regi\u0000stry.example.com' }, 400],
      [{ ...base, lookaside: 'https://sigs.example.com/\u0000' }, 201],
      [{ ...base, signedPrefix: 'registry.example.com/\u0000' }, 400],
    ] as const
  ).entries()) {
    const res = await root().request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: `url${i}`, mirror }) });
    t.is(res.status, status, JSON.stringify(mirror));
    if (status === 201) t.false((await res.text()).includes('\\u0000'), 'what is kept holds no NUL');
  }
});
