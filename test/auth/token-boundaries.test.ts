// Where tokens and robots stop, over real HTTP (token mode, autocreate on, PGlite): a bearer token
// opens nothing of the management API, a robot never sees its project's people or history, a
// token's first request after its user left the htpasswd file is refused, and issuing a token
// writes nothing (the push it grants creates the project).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { basic, createProject, replaceHtpasswd, writeHtpasswd, type TokenAnswer } from '../helpers/auth.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const USERS: Record<string, string> = {
  root: 'root-pw',
  alice: 'alice-pw', // admin of team
  carol: 'carol-pw', // guest in team
  dave: 'dave-pw', // in no project
  leaver: 'leaver-pw', // developer in team; removed from the file in a test
  changer: 'changer-pw', // developer in team; changes password in a test
};

let registry: TestRegistry;
let dir: string;
let htpasswd: string;

const as = (user: string) => createClient(registry.url, { Authorization: basic(user, USERS[user]!) });
const bearer = (token: string, url = registry.url) => createClient(url, { Authorization: `Bearer ${token}` });
const access = (token: string) =>
  (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { access: { type: string; name: string; actions: string[] }[] })
    .access;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function getToken(scopes: string[], user: string, extra = '', url = registry.url): Promise<TokenAnswer> {
  const query = ['service=signet', ...scopes.map((s) => `scope=${encodeURIComponent(s)}`)].join('&');
  const res = await fetch(`${url}/token?${query}${extra}`, { headers: { Authorization: basic(user, USERS[user]!) } });
  if (res.status !== 200) throw new Error(`token: ${res.status} ${await res.text()}`);
  return (await res.json()) as TokenAnswer;
}
function oauth(form: Record<string, string>, url = registry.url): Promise<Response> {
  return fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ service: 'signet', ...form }),
  });
}
/** Whether project `name` exists, asked as a registry admin with Basic credentials. */
async function projectExists(name: string, url = registry.url): Promise<boolean> {
  const res = await fetch(`${url}/api/v1/projects/${name}`, { headers: { Authorization: basic('root', USERS.root!) } });
  if (res.status !== 200 && res.status !== 404) throw new Error(`project ${name}: ${res.status} ${await res.text()}`);
  return res.status === 200;
}

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-token-boundaries-'));
  htpasswd = path.join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, USERS);
  registry = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'token',
      REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
      REGISTRY_AUTH_ADMINS: 'root',
      REGISTRY_PROJECTS_AUTOCREATE: 'true',
    },
  });
  await createProject(registry.url, ['root', USERS.root!], 'team', {
    public: false,
    members: { alice: 'admin', carol: 'guest', leaver: 'developer', changer: 'developer' },
  });
  for (const name of ['team/app', 'team/db']) {
    const res = await as('root').pushImage(name, makeImage({ layers: 1 }), 'prod');
    if (res.status !== 201) throw new Error(`push ${name}: ${res.status}`);
  }
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// Serial (ava runs these before the others): nothing else may look at the htpasswd file between
// the change and the request under test. The file is looked at once a second, at most.
test.serial('the first request after a user left the htpasswd file, or changed password, refuses their tokens', async (t) => {
  const leaver = await getToken(['repository:team/app:pull'], 'leaver');
  t.is((await bearer(leaver.token).getManifest('team/app', 'prod')).status, 200);
  const stayers = Object.fromEntries(Object.entries(USERS).filter(([user]) => user !== 'leaver'));
  await replaceHtpasswd(htpasswd, stayers);
  await sleep(1200);
  // Due a look at the file: the token waits for it, as Basic credentials do, and is refused.
  const first = await bearer(leaver.token).getManifest('team/app', 'prod');
  t.is(first.status, 401);
  t.regex(first.headers.get('www-authenticate') ?? '', /error="invalid_token"/);

  // A refresh token (docker's identity token) redeemed as the first request after a new password.
  const changer = await getToken(['repository:team/app:pull'], 'changer', '&offline_token=true');
  t.truthy(changer.refresh_token);
  await replaceHtpasswd(htpasswd, { ...stayers, changer: 'new-pw' });
  await sleep(1200);
  const refreshed = await oauth({ grant_type: 'refresh_token', refresh_token: changer.refresh_token!, scope: 'repository:team/app:pull' });
  t.is(refreshed.status, 401);
  t.is((await bearer(changer.token).getManifest('team/app', 'prod')).status, 401);
});

test('a bearer token opens nothing under /api/v1, whatever it grants: 401 asking for Basic credentials', async (t) => {
  // A repository may be named like its project (`team`, project team): a token for it is granted.
  const carol = await getToken(['repository:team:pull'], 'carol');
  t.deepEqual(access(carol.token), [{ type: 'repository', name: 'team', actions: ['pull'] }]);
  const alice = await getToken(['repository:team/db:delete'], 'alice');
  t.deepEqual(access(alice.token), [{ type: 'repository', name: 'team/db', actions: ['delete'] }]);
  const refused: [string, string, string][] = [
    [carol.token, 'GET', '/api/v1/projects/team/repositories'],
    [carol.token, 'GET', '/api/v1/projects/team/repositories/db/tags'],
    [carol.token, 'GET', '/api/v1/projects/team/gate-preview'],
    [carol.token, 'GET', '/api/v1/projects/team/keys'],
    [carol.token, 'GET', '/api/v1/projects/team/policy.json'],
    [carol.token, 'GET', '/api/v1/projects/team/members'],
    [carol.token, 'GET', '/api/v1/projects/team'],
    [carol.token, 'GET', '/api/v1/projects'],
    [carol.token, 'GET', '/api/v1/session'],
    [alice.token, 'DELETE', '/api/v1/projects/team/repositories/db/tags/prod'],
    [alice.token, 'DELETE', '/api/v1/projects/team/members/carol'],
    [alice.token, 'POST', '/api/v1/projects/team/robots'],
  ];
  for (const [token, method, pathname] of refused) {
    const res = await bearer(token).request(pathname, { method });
    t.is(res.status, 401, `${method} ${pathname}`);
    t.is(res.headers.get('www-authenticate'), 'Basic realm="Signet Registry"', `${method} ${pathname}`);
    const error = ((await res.json()) as OciErrorBody).errors[0];
    t.is(error?.code, 'UNAUTHORIZED', `${method} ${pathname}`);
    t.regex(error?.message ?? '', /management API: it takes Basic credentials or a console session/);
  }
  t.is((await as('root').getManifest('team/db', 'prod')).status, 200, 'the refused tag delete deleted nothing');
  t.is((await as('root').request('/api/v1/projects/team/members')).status, 200);
  // On /v2 the tokens keep what they grant, and no more.
  t.is((await bearer(carol.token).request('/v2/team/db/tags/list')).status, 401);

  // Basic credentials and the console's session keep the API, and /token its Basic logins.
  t.is((await as('carol').request('/api/v1/projects/team/repositories')).status, 200);
  const signIn = await fetch(`${registry.url}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user: 'carol', password: USERS.carol }),
  });
  t.is(signIn.status, 200);
  const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0]!;
  t.is((await fetch(`${registry.url}/api/v1/projects/team/repositories`, { headers: { Cookie: cookie } })).status, 200);
  t.like(await (await fetch(`${registry.url}/api/v1/session`, { headers: { Cookie: cookie } })).json(), { user: 'carol' });
});

test('a robot, whatever its role, never sees its project members or audit log, with its secret as in its session', async (t) => {
  for (const role of ['guest', 'maintainer']) {
    const made = await as('root').request('/api/v1/projects/team/robots', {
      method: 'POST',
      body: JSON.stringify({ name: `viewer-${role}`, role, expiresInDays: 1 }),
    });
    t.is(made.status, 201);
    const { name, secret } = (await made.json()) as { name: string; secret: string };
    const robot = createClient(registry.url, { Authorization: basic(name, secret) });
    for (const pathname of ['/api/v1/projects/team/members', '/api/v1/projects/team/audit', '/api/v1/projects/team/audit?n=3']) {
      const res = await robot.request(pathname);
      t.is(res.status, 403, `${role} ${pathname}`);
      t.is(((await res.json()) as OciErrorBody).errors[0]?.code, 'DENIED');
    }
    const seen = (await (await robot.request('/api/v1/projects/team')).json()) as { members?: unknown };
    t.is(seen.members, undefined, `${role}: the project's members in its settings`);
    // What its role covers stays open.
    t.is((await robot.request('/api/v1/projects/team/repositories')).status, 200);
    t.is((await robot.getManifest('team/app', 'prod')).status, 200);
  }
  // People keep seeing them: a guest member, not only admins.
  t.is((await as('carol').request('/api/v1/projects/team/members')).status, 200);
  t.is((await as('carol').request('/api/v1/projects/team/audit')).status, 200);
});

test('issuing a token creates no project; the push it grants does, with the pusher as its admin', async (t) => {
  // docker asks pull,push for a push: both are granted (what the project's admin-to-be may), none created.
  const dave = await getToken(['repository:daveproj/app:pull,push'], 'dave');
  const form = await oauth({ grant_type: 'password', username: 'dave', password: USERS.dave!, scope: 'repository:daveform/app:push' });
  t.is(form.status, 200);
  t.false(await projectExists('daveproj'));
  t.false(await projectExists('daveform'));
  t.deepEqual(access(dave.token), [{ type: 'repository', name: 'daveproj/app', actions: ['pull', 'push'] }]);
  t.is(((await form.json()) as TokenAnswer).scope, 'repository:daveform/app:push');
  // Nothing is read before the project exists.
  t.is((await bearer(dave.token).getManifest('daveproj/app', 'v1')).status, 403);

  // A token that does not grant push creates nothing either, refused as lacking the scope.
  const pullOnly = await getToken(['repository:davenot/app:pull'], 'dave');
  const refused = await bearer(pullOnly.token).request('/v2/davenot/app/blobs/uploads/', { method: 'POST' });
  t.is(refused.status, 401);
  t.regex(refused.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
  t.false(await projectExists('davenot'));

  // As docker pushes: layers, then a HEAD of the config blob, then the config and the manifest.
  const client = bearer(dave.token);
  const image = makeImage({ layers: 2 });
  for (const layer of image.layers) t.is((await client.pushBlob('daveproj/app', layer)).status, 201);
  t.is((await client.request(`/v2/daveproj/app/blobs/${image.config.digest}`, { method: 'HEAD' })).status, 404);
  t.is((await client.pushBlob('daveproj/app', image.config)).status, 201);
  t.is((await client.pushManifest('daveproj/app', 'v1', image.manifest)).status, 201);
  t.is((await client.getManifest('daveproj/app', 'v1')).status, 200);
  const project = (await (await as('dave').request('/api/v1/projects/daveproj')).json()) as {
    public: boolean;
    members: { user: string; role: string }[];
  };
  t.false(project.public);
  t.deepEqual(project.members, [{ user: 'dave', role: 'admin' }]);
  // Someone else's token for the new project grants nothing there now.
  t.deepEqual(access((await getToken(['repository:daveproj/app:pull,push'], 'carol')).token), []);
});

test('read-only mode: token requests, GET and the POST form, create no project', async (t) => {
  const readOnly = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'token',
      REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
      REGISTRY_AUTH_ADMINS: 'root',
      REGISTRY_PROJECTS_AUTOCREATE: 'true',
      REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true',
    },
  });
  t.teardown(() => readOnly.close());
  t.is((await getToken(['repository:squat/x:pull,push'], 'dave', '', readOnly.url)).token.length > 0, true);
  const form = await oauth(
    { grant_type: 'password', username: 'dave', password: USERS.dave!, scope: 'repository:squat2/x:push' },
    readOnly.url,
  );
  t.is(form.status, 200);
  t.false(await projectExists('squat', readOnly.url));
  t.false(await projectExists('squat2', readOnly.url));
  const push = await fetch(`${readOnly.url}/v2/squat/x/blobs/uploads/`, {
    method: 'POST',
    headers: { Authorization: basic('dave', USERS.dave!) },
  });
  t.is(push.status, 405);
  t.false(await projectExists('squat', readOnly.url));
});
