// The whole role matrix over real HTTP: anonymous, outsider, guest, developer, maintainer,
// project admin and registry admin, on a private and a public project.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { createClient, errorCode } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const USERS = {
  root: 'root-pw',
  alice: 'alice-pw', // admin of priv and pub
  dev: 'dev-pw',
  maint: 'maint-pw',
  guest: 'guest-pw',
  outsider: 'outsider-pw',
};
type User = keyof typeof USERS;

let registry: TestRegistry;
let dir: string;
const as = (user?: User) => createClient(registry.url, user ? { Authorization: basic(user, USERS[user]) } : {});

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-roles-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  registry = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_REALM: 'Signet Test',
      REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
      REGISTRY_AUTH_ADMINS: 'root',
    },
  });
  const root = as('root');
  for (const [name, isPublic] of [
    ['priv', false],
    ['pub', true],
  ] as const) {
    const res = await root.request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: isPublic }) });
    if (res.status !== 201) throw new Error(`create ${name}: ${res.status} ${await res.text()}`);
    for (const [user, role] of [
      ['alice', 'admin'],
      ['dev', 'developer'],
      ['maint', 'maintainer'],
      ['guest', 'guest'],
    ]) {
      await root.request(`/api/v1/projects/${name}/members/${user}`, { method: 'PUT', body: JSON.stringify({ role }) });
    }
  }
});
test.after.always(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

test('GET /v2/: 401 with a Basic challenge without credentials, 200 with them, 401 with wrong ones', async (t) => {
  const anon = await as().request('/v2/');
  t.is(anon.status, 401);
  t.is(anon.headers.get('www-authenticate'), 'Basic realm="Signet Test"');
  t.is(anon.headers.get('docker-distribution-api-version'), 'registry/2.0');
  t.is((await as('guest').request('/v2/')).status, 200);
  const wrong = await createClient(registry.url, { Authorization: basic('alice', 'nope') }).request('/v2/');
  t.is(wrong.status, 401);
  t.is(await errorCode(wrong), 'UNAUTHORIZED');
});

const pushers: [User | undefined, number][] = [
  [undefined, 401],
  ['outsider', 403],
  ['guest', 403],
  ['dev', 201],
  ['maint', 201],
  ['alice', 201],
  ['root', 201],
];
for (const [user, expected] of pushers) {
  test(`push into a private project as ${user ?? 'anonymous'}: ${expected}`, async (t) => {
    const image = makeImage({ layers: 1 });
    const res = await as(user).pushBlob(`priv/push-${user ?? 'anon'}`, image.config);
    t.is(res.status, expected);
    if (expected === 401) t.is(res.headers.get('www-authenticate'), 'Basic realm="Signet Test"');
    if (expected === 403) t.is(await errorCode(res), 'DENIED');
  });
}

test('pull matrix on private and public projects', async (t) => {
  const image = makeImage({ layers: 1 });
  t.is((await as('dev').pushImage('priv/app', image, 'v1')).status, 201);
  t.is((await as('dev').pushImage('pub/app', image, 'v1')).status, 201);
  const cases: [User | undefined, string, number][] = [
    [undefined, 'priv/app', 401],
    ['outsider', 'priv/app', 403],
    ['guest', 'priv/app', 200],
    ['dev', 'priv/app', 200],
    ['root', 'priv/app', 200],
    [undefined, 'pub/app', 200],
    ['outsider', 'pub/app', 200],
  ];
  for (const [user, repo, expected] of cases) {
    const manifest = await as(user).getManifest(repo, 'v1');
    t.is(manifest.status, expected, `${user ?? 'anonymous'} manifest ${repo}`);
    const blob = await as(user).request(`/v2/${repo}/blobs/${image.config.digest}`, { method: 'HEAD' });
    t.is(blob.status, expected, `${user ?? 'anonymous'} blob ${repo}`);
  }
  // An authorized caller asking for a missing blob gets 404, never 401 (containers/image).
  const miss = await as('guest').request(`/v2/priv/app/blobs/sha256:${'0'.repeat(64)}`, { method: 'HEAD' });
  t.is(miss.status, 404);
  // Anonymous push to a public project is still refused.
  t.is((await as().pushBlob('pub/app', makeImage().config)).status, 401);
});

test('wrong credentials are refused even where anonymous pulls work', async (t) => {
  const res = await createClient(registry.url, { Authorization: basic('guest', 'wrong') }).getManifest('pub/app', 'v1');
  t.is(res.status, 401);
});

test('`Basic Og==` (containers/image without credentials) is anonymous, not a failed login', async (t) => {
  // skopeo and podman answer a Basic challenge with empty credentials when they have none.
  const empty = createClient(registry.url, { Authorization: `Basic ${Buffer.from(':').toString('base64')}` });
  await as('dev').pushImage('pub/empty-creds', makeImage({ layers: 1 }), 'v1');
  t.is((await empty.getManifest('pub/empty-creds', 'v1')).status, 200);
  const priv = await empty.getManifest('priv/app', 'v1');
  t.is(priv.status, 401);
  t.is(priv.headers.get('www-authenticate'), 'Basic realm="Signet Test"');
  t.is(((await priv.json()) as { errors: { message: string }[] }).errors[0]?.message, 'authentication required');
  // A user name with an empty password is still a failed login.
  const noPassword = createClient(registry.url, { Authorization: basic('dev', '') });
  t.is((await noPassword.getManifest('pub/empty-creds', 'v1')).status, 401);
});

test('delete needs maintainer', async (t) => {
  const image = makeImage({ layers: 1 });
  await as('dev').pushImage('priv/del', image, 'v1');
  const byDev = await as('dev').request(`/v2/priv/del/manifests/${image.manifest.digest}`, { method: 'DELETE' });
  t.is(byDev.status, 403);
  const byMaint = await as('maint').request(`/v2/priv/del/manifests/${image.manifest.digest}`, { method: 'DELETE' });
  t.is(byMaint.status, 202);
});

test('a private repository does not reveal whether it exists', async (t) => {
  await as('dev').pushImage('priv/exists', makeImage({ layers: 1 }), 'v1');
  const existing = await as('outsider').getManifest('priv/exists', 'v1');
  const missing = await as('outsider').getManifest('priv/missing', 'v1');
  const noProject = await as('outsider').getManifest('nosuchproject/x', 'v1');
  t.is(existing.status, 403);
  t.is(missing.status, 403);
  t.is(noProject.status, 403);
  const messages = await Promise.all(
    [existing, missing, noProject].map(async (r) =>
      ((await r.json()) as { errors: { message: string }[] }).errors[0]?.message.replace(/\S+\/\S+/g, 'X'),
    ),
  );
  t.is(new Set(messages).size, 1);
});

test('pushing into a project that does not exist is refused with a clear message', async (t) => {
  const res = await as('dev').pushBlob('newproject/app', makeImage().config);
  t.is(res.status, 403);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  t.is(body.errors[0]?.code, 'DENIED');
  t.regex(body.errors[0]?.message ?? '', /signet project create newproject/);
});

test('a registry admin pushing into a project that does not exist is refused too: no repository without a project', async (t) => {
  const root = as('root');
  const image = makeImage({ layers: 1 });
  const blob = await root.pushBlob('adminless/app', image.config);
  t.is(blob.status, 403);
  t.regex(
    ((await blob.json()) as { errors: { message: string }[] }).errors[0]?.message ?? '',
    /project adminless does not exist; create it first with "signet project create adminless"/,
  );
  t.is((await root.pushManifest('adminless/app', 'v1', image.manifest)).status, 403);
  const catalog = (await (await root.request('/v2/_catalog')).json()) as { repositories: string[] };
  t.false(catalog.repositories.includes('adminless/app'));
  const projects = (await (await root.request('/api/v1/projects')).json()) as { projects: { name: string }[] };
  t.false(projects.projects.some((p) => p.name === 'adminless'));
  // Once the project exists, the same push goes through.
  t.is((await root.request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'adminless' }) })).status, 201);
  t.is((await root.pushImage('adminless/app', image, 'v1')).status, 201);
});

test('without authentication, a push into a new project creates it (private), so every repository has a project', async (t) => {
  const open = await startTestRegistry();
  t.teardown(() => open.close());
  const anyone = createClient(open.url);
  t.is((await anyone.pushImage('team/app', makeImage({ layers: 1 }), 'v1')).status, 201);
  t.is((await anyone.pushImage('team/tools/lint', makeImage({ layers: 1 }), 'v1')).status, 201);
  t.is((await anyone.pushImage('busybox', makeImage({ layers: 1 }), 'v1')).status, 201);
  const catalog = (await (await anyone.request('/v2/_catalog')).json()) as { repositories: string[] };
  t.deepEqual(catalog.repositories, ['busybox', 'team/app', 'team/tools/lint']);
  const { projects } = (await (await anyone.request('/api/v1/projects')).json()) as { projects: { name: string; public: boolean }[] };
  t.deepEqual(
    projects.map((p) => [p.name, p.public]),
    [
      ['busybox', false],
      ['team', false],
    ],
  );
  const repos = (await (await anyone.request('/api/v1/projects/team/repositories')).json()) as { repositories: { name: string }[] };
  t.deepEqual(
    repos.repositories.map((r) => r.name),
    ['team/app', 'team/tools/lint'],
  );
});

test('catalog lists only what the caller may pull', async (t) => {
  await as('dev').pushImage('priv/catalogued', makeImage({ layers: 1 }), 'v1');
  await as('dev').pushImage('pub/catalogued', makeImage({ layers: 1 }), 'v1');
  const list = async (user?: User): Promise<string[]> =>
    ((await (await as(user).request('/v2/_catalog')).json()) as { repositories: string[] }).repositories;
  t.false((await list('outsider')).includes('priv/catalogued'));
  t.true((await list('outsider')).includes('pub/catalogued'));
  t.true((await list('guest')).includes('priv/catalogued'));
  t.false((await list()).includes('priv/catalogued'));
});

test('an anonymous walk of the catalog one by one sees every public repository once, and no private name, not even in Link', async (t) => {
  for (const name of ['pub/walk-a', 'priv/walk-b', 'pub/walk-c', 'priv/walk-d'])
    await as('dev').pushImage(name, makeImage({ layers: 1 }), 'v1');
  const whole = ((await (await as().request('/v2/_catalog?n=1000')).json()) as { repositories: string[] }).repositories;
  t.true(whole.includes('pub/walk-c') && !whole.includes('priv/walk-b'));
  const seen: string[] = [];
  let next: string | undefined = '/v2/_catalog?n=1';
  while (next) {
    const res = await as().request(next);
    const link = res.headers.get('link') ?? '';
    t.false(decodeURIComponent(link).includes('priv/'), link);
    seen.push(...((await res.json()) as { repositories: string[] }).repositories);
    next = /<([^>]+)>; rel="next"/.exec(link)?.[1];
  }
  t.deepEqual(seen, whole);
});

test('a mount needs pull on the source repository', async (t) => {
  const image = makeImage({ layers: 1 });
  await as('dev').pushBlob('priv/secret', image.config);
  const root = as('root');
  await root.request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'outsiders' }) });
  await root.request('/api/v1/projects/outsiders/members/outsider', { method: 'PUT', body: JSON.stringify({ role: 'developer' }) });
  const res = await as('outsider').request(`/v2/outsiders/app/blobs/uploads/?mount=${image.config.digest}&from=priv/secret`, {
    method: 'POST',
  });
  t.is(res.status, 202, 'falls back to an upload session instead of mounting');
  t.is((await as('outsider').request(`/v2/outsiders/app/blobs/${image.config.digest}`, { method: 'HEAD' })).status, 404);
  const mine = await as('dev').request(`/v2/pub/mounted/blobs/uploads/?mount=${image.config.digest}&from=priv/secret`, { method: 'POST' });
  t.is(mine.status, 201);
});

test('management API: who may create, change, list members and delete', async (t) => {
  const create = (user: User, name: string) =>
    as(user).request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: false }) });
  t.is((await create('alice', 'byalice')).status, 403);
  const made = await create('root', 'apiproj');
  t.is(made.status, 201);
  t.is(made.headers.get('location'), '/api/v1/projects/apiproj');
  t.is((await create('root', 'apiproj')).status, 409);
  const bad = await create('root', 'Bad_Name');
  t.is(bad.status, 400);
  t.is(await errorCode(bad), 'NAME_INVALID');

  const root = as('root');
  await root.request('/api/v1/projects/apiproj/members/alice', { method: 'PUT', body: JSON.stringify({ role: 'admin' }) });
  await root.request('/api/v1/projects/apiproj/members/guest', { method: 'PUT', body: JSON.stringify({ role: 'guest' }) });

  // Project admins change settings and members; others may not.
  const patch = (user: User, body: unknown) =>
    as(user).request('/api/v1/projects/apiproj', { method: 'PATCH', body: JSON.stringify(body) });
  t.is((await patch('guest', { public: true })).status, 403);
  const patched = await patch('alice', { public: true });
  t.is(patched.status, 200);
  t.is(((await patched.json()) as { public: boolean }).public, true);
  t.is((await patch('alice', { public: 'yes' })).status, 400);
  t.is(
    (await as('guest').request('/api/v1/projects/apiproj/members/dev', { method: 'PUT', body: JSON.stringify({ role: 'admin' }) })).status,
    403,
  );
  t.is(
    (await as('alice').request('/api/v1/projects/apiproj/members/dev', { method: 'PUT', body: JSON.stringify({ role: 'owner' }) })).status,
    400,
  );
  t.is(
    (await as('alice').request('/api/v1/projects/apiproj/members/dev', { method: 'PUT', body: JSON.stringify({ role: 'developer' }) }))
      .status,
    200,
  );

  const members = await as('guest').request('/api/v1/projects/apiproj/members');
  t.is(members.status, 200);
  t.deepEqual(((await members.json()) as { members: { user: string; role: string }[] }).members, [
    { user: 'alice', role: 'admin' },
    { user: 'dev', role: 'developer' },
    { user: 'guest', role: 'guest' },
    { user: 'root', role: 'admin' }, // the creator becomes an admin, as in Harbor
  ]);
  t.is((await as('outsider').request('/api/v1/projects/apiproj/members')).status, 403);

  // Repositories and tags of a project.
  await as('dev').pushImage('apiproj/team/app', makeImage({ layers: 1 }), 'v1');
  const repos = (await (await as('guest').request('/api/v1/projects/apiproj/repositories')).json()) as { repositories: { name: string }[] };
  t.deepEqual(repos.repositories, [{ name: 'apiproj/team/app' }]);
  const tags = (await (await as('guest').request('/api/v1/projects/apiproj/repositories/team/app/tags')).json()) as {
    tags: { name: string }[];
  };
  t.deepEqual(
    tags.tags.map((x) => x.name),
    ['v1'],
  );

  // A project holding images is not deleted; once empty it is.
  const refused = await as('alice').request('/api/v1/projects/apiproj', { method: 'DELETE' });
  t.is(refused.status, 409);
  const listed = (await (await as('outsider').request('/api/v1/projects')).json()) as { projects: { name: string }[] };
  t.true(
    listed.projects.some((p) => p.name === 'apiproj'),
    'public now, so visible',
  );
  t.false(listed.projects.some((p) => p.name === 'priv'));
  t.is((await as('alice').request('/api/v1/projects/apiproj/members/dev', { method: 'DELETE' })).status, 204);
  t.is((await as('alice').request('/api/v1/projects/apiproj/members/dev', { method: 'DELETE' })).status, 404);
});

test('API errors use the registry error shape', async (t) => {
  const res = await as('root').request('/api/v1/projects', { method: 'POST', body: 'not json' });
  t.is(res.status, 400);
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  t.is(body.errors[0]?.code, 'REQUEST_INVALID');
  const anon = await as().request('/api/v1/projects/priv');
  t.is(anon.status, 401);
});

/** A registry of the same users where a push into a missing project creates it (closed with `t`). */
async function autocreateRegistry(t: { teardown(fn: () => Promise<void>): void }): Promise<TestRegistry> {
  const auto = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
      REGISTRY_PROJECTS_AUTOCREATE: 'true',
      REGISTRY_AUTH_ADMINS: 'root',
    },
  });
  t.teardown(() => auto.close());
  return auto;
}

test('with autocreate, the first push creates the project and makes the pusher its admin', async (t) => {
  const auto = await autocreateRegistry(t);
  const dev = createClient(auto.url, { Authorization: basic('dev', USERS.dev) });
  t.is((await dev.pushImage('devproj/app', makeImage({ layers: 1 }), 'v1')).status, 201);
  const project = (await (await dev.request('/api/v1/projects/devproj')).json()) as {
    public: boolean;
    members: { user: string; role: string }[];
  };
  t.false(project.public);
  t.deepEqual(project.members, [{ user: 'dev', role: 'admin' }]);
  const other = createClient(auto.url, { Authorization: basic('guest', USERS.guest) });
  t.is((await other.getManifest('devproj/app', 'v1')).status, 403);
  // A registry admin's push creates the project the same way.
  const root = createClient(auto.url, { Authorization: basic('root', USERS.root) });
  t.is((await root.pushImage('rootproj/app', makeImage({ layers: 1 }), 'v1')).status, 201);
  const owned = (await (await root.request('/api/v1/projects/rootproj')).json()) as { members: { user: string; role: string }[] };
  t.deepEqual(owned.members, [{ user: 'root', role: 'admin' }]);
});

test("a deleted project's name, taken again, brings back none of its layers or history", async (t) => {
  // Found by adversarial testing: the emptied repositories kept their blob links, and the audit
  // log is kept by project name, so whoever next created the name (here by autocreate, on any
  // push) read the old project's layers by digest and its members and robots in the audit log.
  const auto = await autocreateRegistry(t);
  const alice = createClient(auto.url, { Authorization: basic('alice', USERS.alice) });
  const outsider = createClient(auto.url, { Authorization: basic('outsider', USERS.outsider) });
  const secret = makeImage({ layers: 1 });
  t.is((await alice.pushImage('gone/app', secret, 'v1')).status, 201);
  await alice.request('/api/v1/projects/gone/members/maint', { method: 'PUT', body: JSON.stringify({ role: 'developer' }) });
  const layer = secret.layers[0]!.digest;
  t.is((await outsider.request(`/v2/gone/app/blobs/${layer}`)).status, 403);
  t.is((await alice.request(`/v2/gone/app/manifests/${secret.manifest.digest}`, { method: 'DELETE' })).status, 202);
  t.is((await alice.request('/api/v1/projects/gone', { method: 'DELETE' })).status, 204);

  t.is((await outsider.pushImage('gone/x', makeImage({ layers: 1 }), 'v1')).status, 201, 'autocreate gives the name to the next pusher');
  for (const repository of ['gone/app', 'gone/x']) {
    t.is((await outsider.request(`/v2/${repository}/blobs/${layer}`)).status, 404, repository);
  }
  const audit = (await (await outsider.request('/api/v1/projects/gone/audit')).json()) as { entries: { action: string; detail: object }[] };
  t.deepEqual(
    audit.entries.map((e) => e.action),
    ['project.create'],
    'only the new project history',
  );
  // The old layer is still the old owner's, where they pushed it again: blobs are shared by content.
  t.is((await alice.pushImage('mine/app', secret, 'v1')).status, 201);
  t.is((await alice.request(`/v2/mine/app/blobs/${layer}`)).status, 200);
});
