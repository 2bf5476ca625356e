// The token service and robot accounts over real HTTP (token mode, PGlite): what tokens grant,
// which tokens are refused, what robots may do, and what a hostile project member would try.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { basic, replaceHtpasswd, writeHtpasswd, type TokenAnswer } from '../helpers/auth.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { run } from '../helpers/run.js';
import type { Action } from '../../auth/authorize.js';

const MAIN = path.resolve('server/main.ts');
function signet(args: string[]) {
  return run(process.execPath, ['--import', 'tsx', MAIN, '--registry', registry.url, '--user', 'root', ...args], {
    env: { ...process.env, SIGNET_PASSWORD: USERS.root },
  });
}

const USERS: Record<string, string> = {
  root: 'root-pw',
  dev: 'dev-pw', // developer in team, guest in other
  guest: 'guest-pw', // guest in team
  outsider: 'outsider-pw',
  changer: 'changer-pw', // developer in team; changes password in a test
  // The hostile requests' own user: its wrong passwords count against it alone (10 a minute per
  // address and user, then 429), not against dev, whom tests running beside it sign in as.
  fuzz: 'fuzz-pw',
  'robot$team+ci': 'htpasswd-pw', // an htpasswd entry under a robot's name never logs in
};

let registry: TestRegistry;
let dir: string;
let htpasswd: string;

const bearer = (token: string) => createClient(registry.url, { Authorization: `Bearer ${token}` });
const claims = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
    access: { type: string; name: string; actions: string[] }[];
    sub: string;
    aud: string;
  };

async function getToken(scopes: string[], credentials?: [string, string], extra = ''): Promise<Response> {
  const query = ['service=signet', ...scopes.map((s) => `scope=${encodeURIComponent(s)}`)].join('&');
  return fetch(`${registry.url}/token?${query}${extra}`, credentials ? { headers: { Authorization: basic(...credentials) } } : {});
}
async function token(scopes: string[], credentials?: [string, string]): Promise<string> {
  const res = await getToken(scopes, credentials);
  if (res.status !== 200) throw new Error(`token: ${res.status} ${await res.text()}`);
  return ((await res.json()) as TokenAnswer).token;
}
async function oauth(form: Record<string, string>): Promise<Response> {
  return fetch(`${registry.url}/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ service: 'signet', client_id: 'test', ...form }),
  });
}
const root = () => createClient(registry.url, { Authorization: basic('root', USERS.root!) });

async function createRobot(project: string, name: string, role: string, as: [string, string] = ['root', USERS.root!]): Promise<Response> {
  return fetch(`${registry.url}/api/v1/projects/${project}/robots`, {
    method: 'POST',
    headers: { Authorization: basic(...as), 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, role, expiresInDays: 30 }),
  });
}
async function robot(project: string, name: string, role: string): Promise<[string, string]> {
  const res = await createRobot(project, name, role);
  if (res.status !== 201) throw new Error(`robot: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { name: string; secret: string };
  return [body.name, body.secret];
}

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-tokens-'));
  htpasswd = path.join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, USERS);
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'token', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd, REGISTRY_AUTH_ADMINS: 'root' },
  });
  for (const [name, isPublic, members] of [
    ['team', false, { dev: 'developer', guest: 'guest', changer: 'developer' }],
    ['other', false, { dev: 'guest' }],
    ['pub', true, {}],
  ] as const) {
    const res = await root().request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: isPublic }) });
    if (res.status !== 201) throw new Error(`create ${name}: ${res.status}`);
    for (const [user, role] of Object.entries(members)) {
      await root().request(`/api/v1/projects/${name}/members/${user}`, { method: 'PUT', body: JSON.stringify({ role }) });
    }
  }
  const image = makeImage({ layers: 1 });
  for (const name of ['team/a', 'team/b', 'other/x', 'pub/app']) {
    const res = await root().pushImage(name, image, 'v1');
    if (res.status !== 201) throw new Error(`push ${name}: ${res.status}`);
  }
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('challenges: Bearer with realm and service, and the scope the request needs', async (t) => {
  const base = await fetch(`${registry.url}/v2/`);
  t.is(base.status, 401);
  t.is(base.headers.get('www-authenticate'), `Bearer realm="${registry.url}/token",service="signet"`);
  // X-Forwarded-Proto counts only from REGISTRY_HTTP_TRUSTEDPROXIES (none here).
  const forwarded = await fetch(`${registry.url}/v2/`, { headers: { 'X-Forwarded-Proto': 'https' } });
  t.is(forwarded.headers.get('www-authenticate'), `Bearer realm="${registry.url}/token",service="signet"`);
  const pull = await fetch(`${registry.url}/v2/team/a/manifests/v1`);
  t.is(pull.headers.get('www-authenticate'), `Bearer realm="${registry.url}/token",service="signet",scope="repository:team/a:pull"`);
  const push = await fetch(`${registry.url}/v2/team/a/blobs/uploads/`, { method: 'POST' });
  t.is(push.headers.get('www-authenticate'), `Bearer realm="${registry.url}/token",service="signet",scope="repository:team/a:pull,push"`);
  // Basic credentials keep working on every route.
  t.is((await createClient(registry.url, { Authorization: basic('dev', USERS.dev!) }).getManifest('team/a', 'v1')).status, 200);
  t.is((await root().request('/api/v1/projects/team')).status, 200);
});

test('GET /token: the answer of the spec; anonymous callers get pulls of public projects only', async (t) => {
  const res = await getToken(['repository:pub/app:pull,push', 'repository:team/a:pull']);
  t.is(res.status, 200);
  t.is(res.headers.get('cache-control'), 'no-store');
  const body = (await res.json()) as TokenAnswer;
  t.is(body.token, body.access_token);
  t.true(body.expires_in >= 60);
  t.false(Number.isNaN(Date.parse(body.issued_at)));
  t.is(body.refresh_token, undefined);
  t.deepEqual(claims(body.token).access, [{ type: 'repository', name: 'pub/app', actions: ['pull'] }]);
  t.is(claims(body.token).aud, 'signet');
  t.is((await bearer(body.token).getManifest('pub/app', 'v1')).status, 200);
  t.is((await bearer(body.token).request('/v2/')).status, 200, 'an anonymous token answers the challenge of /v2/');
  const priv = await bearer(body.token).getManifest('team/a', 'v1');
  t.is(priv.status, 401);
  t.regex(priv.headers.get('www-authenticate') ?? '', /error="insufficient_scope"/);
});

test('a token for team/a:pull cannot push to team/a or read team/b, though its holder may', async (t) => {
  const pullOnly = await token(['repository:team/a:pull'], ['dev', USERS.dev!]);
  t.deepEqual(claims(pullOnly).access, [{ type: 'repository', name: 'team/a', actions: ['pull'] }]);
  const client = bearer(pullOnly);
  t.is((await client.getManifest('team/a', 'v1')).status, 200);
  const push = await client.request('/v2/team/a/blobs/uploads/', { method: 'POST' });
  t.is(push.status, 401);
  t.is(
    push.headers.get('www-authenticate'),
    `Bearer realm="${registry.url}/token",service="signet",scope="repository:team/a:pull,push",error="insufficient_scope"`,
  );
  const manifestPut = await client.pushManifest('team/a', 'v2', makeImage().manifest);
  t.is(manifestPut.status, 401);
  for (const path of ['/v2/team/b/manifests/v1', '/v2/team/b/tags/list', '/extensions/v2/team/b/signatures/sha256:' + '0'.repeat(64)]) {
    t.is((await client.request(path)).status, 401, path);
  }
  // Deleting is beyond a developer whatever the token: refused as such.
  t.is((await client.request('/v2/team/a/manifests/v1', { method: 'DELETE' })).status, 403);
  // The management API takes Basic credentials: a token opens none of it (refused as a credential it does not take).
  t.is((await client.request('/api/v1/projects/team/members')).status, 401);
  // A token is never exchanged for a better one.
  const exchanged = await fetch(`${registry.url}/token?service=signet&scope=repository:team/a:push`, {
    headers: { Authorization: `Bearer ${pullOnly}` },
  });
  t.is(exchanged.status, 401);

  const pushToken = await token(['repository:team/a:pull,push'], ['dev', USERS.dev!]);
  const image = makeImage({ layers: 1 });
  t.is((await bearer(pushToken).pushImage('team/a', image, 'v-token')).status, 201);
});

test('what a token grants never exceeds what the roles allow (any scope a member might send)', async (t) => {
  const users = ['dev', 'guest', 'outsider'] as const;
  const segment = fc.constantFrom('team', 'other', 'pub', 'nope', 'a', 'b', 'x', 'app', 'TEAM', '..', 'team:a', 'team+ci', '');
  const scope = fc.record({
    type: fc.constantFrom('repository', 'registry', 'repository(plugin)', 'Repository'),
    name: fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => parts.join('/')),
    actions: fc.array(fc.constantFrom('pull', 'push', 'delete', '*', 'admin', 'sign', ''), { maxLength: 4 }),
  });
  const authorizer = registry.registry.deps.authorizer;
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...users), fc.array(scope, { minLength: 1, maxLength: 4 }), async (user, scopes) => {
      const res = await getToken(
        scopes.map((s) => `${s.type}:${s.name}:${s.actions.join(',')}`),
        [user, USERS[user]!],
      );
      if (res.status !== 200) return false;
      const { access } = claims(((await res.json()) as TokenAnswer).token);
      for (const entry of access) {
        if (entry.type !== 'repository') return false;
        const asked: string[] = scopes.filter((s) => s.type.startsWith('repository') && s.name === entry.name).flatMap((s) => s.actions);
        for (const action of entry.actions) {
          if (!asked.includes(action) && !asked.includes('*')) return false;
          if (action === '*') continue;
          if (!(await authorizer.check({ user }, action as Action, entry.name)).allowed) return false;
        }
      }
      return true;
    }),
    { numRuns: 60 },
  );
  t.pass();
});

test('refused tokens: another key, another audience or issuer, expired, a refresh token, alg none, garbage', async (t) => {
  const good = claims(await token(['repository:team/a:pull'], ['dev', USERS.dev!]));
  const [row] = await registry.registry.db.query<{ private_jwk: JWK | string; kid: string }>(
    'SELECT private_jwk, kid FROM token_signing_keys',
  );
  const ourKey = await importJWK(typeof row!.private_jwk === 'string' ? (JSON.parse(row!.private_jwk) as JWK) : row!.private_jwk, 'ES256');
  const otherKey = (await generateKeyPair('ES256')).privateKey;
  const now = Math.floor(Date.now() / 1000);
  const make = (key: CryptoKey | Uint8Array, changes: { aud?: string; iss?: string; exp?: number; typ?: string } = {}) =>
    new SignJWT({
      ...good,
      aud: changes.aud ?? 'signet',
      iss: changes.iss ?? 'signet',
      exp: changes.exp ?? now + 300,
      iat: now,
      nbf: now - 5,
    })
      .setProtectedHeader({ alg: 'ES256', typ: changes.typ ?? 'JWT', kid: row!.kid })
      .sign(key);
  // The control: our key and the right claims pass.
  t.is((await bearer(await make(ourKey)).getManifest('team/a', 'v1')).status, 200);
  const refused = {
    'another key': await make(otherKey),
    'another audience': await make(ourKey, { aud: 'registry.example.com' }),
    'another issuer': await make(ourKey, { iss: 'someone' }),
    expired: await make(ourKey, { exp: now - 10 }),
    'a refresh token': await make(ourKey, { typ: 'signet-refresh+jwt' }),
    'alg none': `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(good)).toString('base64url')}.`,
    garbage: 'not-a-token',
  };
  for (const [what, forged] of Object.entries(refused)) {
    const res = await bearer(forged).getManifest('team/a', 'v1');
    t.is(res.status, 401, what);
    t.regex(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/, what);
  }
  // An access token is no refresh token either.
  const access = await token(['repository:team/a:pull'], ['dev', USERS.dev!]);
  t.is((await oauth({ grant_type: 'refresh_token', refresh_token: access })).status, 401);
});

test('POST /token: the password grant (containerd) and the refresh grant (docker after login)', async (t) => {
  const password = await oauth({
    grant_type: 'password',
    username: 'dev',
    password: USERS.dev!,
    scope: 'repository:team/a:pull,push repository:other/x:pull,push',
    access_type: 'offline',
  });
  t.is(password.status, 200);
  const body = (await password.json()) as TokenAnswer;
  t.is(body.scope, 'repository:team/a:pull,push repository:other/x:pull');
  t.truthy(body.refresh_token);
  t.is((await oauth({ grant_type: 'password', username: 'dev', password: 'wrong' })).status, 401);
  t.is((await oauth({ grant_type: 'client_credentials' })).status, 400);
  t.is((await oauth({ grant_type: 'password', username: 'dev', password: USERS.dev!, service: 'elsewhere' })).status, 400);

  const refreshed = await oauth({ grant_type: 'refresh_token', refresh_token: body.refresh_token!, scope: 'repository:team/b:pull' });
  t.is(refreshed.status, 200);
  const again = (await refreshed.json()) as TokenAnswer;
  t.deepEqual(claims(again.access_token).access, [{ type: 'repository', name: 'team/b', actions: ['pull'] }]);
  t.is((await bearer(again.access_token).getManifest('team/b', 'v1')).status, 200);
  // GET with offline_token=true, as docker login asks, gives a refresh token too.
  const login = (await (await getToken([], ['dev', USERS.dev!], '&offline_token=true&client_id=docker')).json()) as TokenAnswer;
  t.truthy(login.refresh_token);
  // Bad credentials at the token service: 401 with a Basic challenge.
  const bad = await getToken([], ['dev', 'wrong']);
  t.is(bad.status, 401);
  t.is(bad.headers.get('www-authenticate')?.startsWith('Basic '), true);
});

// Serial (before the others): rewriting the file re-hashes every user, which ends everyone's tokens.
test.serial('a changed password ends the tokens and refresh tokens issued before', async (t) => {
  const answer = (await (
    await getToken(['repository:team/a:pull'], ['changer', USERS.changer!], '&offline_token=true')
  ).json()) as TokenAnswer;
  t.is((await bearer(answer.token).getManifest('team/a', 'v1')).status, 200);
  await replaceHtpasswd(htpasswd, { ...USERS, changer: 'new-pw' });
  // The file is looked at once a second.
  let status = 200;
  for (let i = 0; i < 40 && status === 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = (await bearer(answer.token).getManifest('team/a', 'v1')).status;
  }
  t.is(status, 401);
  t.is((await oauth({ grant_type: 'refresh_token', refresh_token: answer.refresh_token! })).status, 401);
  t.is((await getToken([], ['changer', 'new-pw'])).status, 200);
});

test('robots: a developer robot pushes to its project only, never elsewhere or into the API; guests pull', async (t) => {
  const ci = await robot('team', 'ci-push', 'developer');
  t.regex(ci[0], /^robot\$team\+ci-push$/);
  const viaBasic = createClient(registry.url, { Authorization: basic(...ci) });
  const image = makeImage({ layers: 1 });
  t.is((await viaBasic.pushImage('team/robot', image, 'v1')).status, 201);
  t.is((await viaBasic.pushBlob('other/robot', image.config)).status, 403);
  t.is((await viaBasic.getManifest('other/x', 'v1')).status, 403);
  t.is((await viaBasic.getManifest('pub/app', 'v1')).status, 200, 'a robot pulls public projects as anyone may');
  t.is((await viaBasic.request('/v2/team/robot/manifests/v1', { method: 'DELETE' })).status, 403);
  t.is((await createRobot('team', 'child', 'developer', ci)).status, 403, 'a robot made a robot');
  t.is(
    (
      await viaBasic.request('/api/v1/projects', {
        method: 'POST',
        body: JSON.stringify({ name: 'robotland' }),
        headers: { 'Content-Type': 'application/json' },
      })
    ).status,
    403,
  );
  // Through tokens: exactly the same.
  const granted = claims(await token(['repository:team/robot:pull,push,delete', 'repository:other/x:pull'], ci)).access;
  t.deepEqual(granted, [{ type: 'repository', name: 'team/robot', actions: ['pull', 'push'] }]);

  const reader = await robot('team', 'reader', 'guest');
  const readerClient = createClient(registry.url, { Authorization: basic(...reader) });
  t.is((await readerClient.getManifest('team/robot', 'v1')).status, 200);
  t.is((await readerClient.pushBlob('team/robot', image.config)).status, 403);
});

test('robots: names cannot collide with htpasswd users; wrong secrets fail; secrets are stored only as a hash', async (t) => {
  // The htpasswd file has an entry robot$team+ci: it never logs in, with or without a robot of that name.
  t.is((await getToken([], ['robot$team+ci', USERS['robot$team+ci']!])).status, 401);
  const ci = await robot('team', 'ci', 'developer');
  t.is((await getToken([], ['robot$team+ci', USERS['robot$team+ci']!])).status, 401);
  t.is((await getToken([], ci)).status, 200);
  t.is((await getToken([], [ci[0], ci[1].slice(0, -1) + (ci[1].endsWith('A') ? 'B' : 'A')])).status, 401);
  t.is((await getToken([], ['robot$other+ci', ci[1]])).status, 401);
  // Members are people: a robot is not made a member anywhere.
  const member = await root().request('/api/v1/projects/other/members/robot$team+ci', {
    method: 'PUT',
    body: JSON.stringify({ role: 'admin' }),
  });
  t.is(member.status, 400);
  t.is((await createRobot('team', 'ci', 'developer')).status, 409);
  t.is((await createRobot('team', 'Bad+Name', 'developer')).status, 400);
  t.is((await createRobot('team', 'admin-bot', 'admin')).status, 400, 'robots are at most maintainers');
  t.is((await createRobot('team', 'x', 'developer', ['dev', USERS.dev!])).status, 403, 'a developer made a robot');
  const rows = await registry.registry.db.query<{ secret_sha256: Uint8Array }>(
    `SELECT secret_sha256 FROM robots WHERE name = 'ci' AND project = 'team'`,
  );
  t.is(Buffer.from(rows[0]!.secret_sha256).length, 32);
  t.false(JSON.stringify(await (await root().request('/api/v1/projects/team/robots')).json()).includes(ci[1]));
});

test('robots: revocation ends Basic logins, tokens and refresh tokens at once; the use and the changes are recorded', async (t) => {
  const ci = await robot('team', 'revoked', 'developer');
  const answer = (await (await getToken(['repository:team/a:pull'], ci, '&offline_token=true')).json()) as TokenAnswer;
  t.is((await bearer(answer.token).getManifest('team/a', 'v1')).status, 200);
  const listed = (await (await root().request('/api/v1/projects/team/robots')).json()) as {
    robots: { name: string; lastUsedAt: string | null }[];
  };
  t.truthy(listed.robots.find((r) => r.name === ci[0])?.lastUsedAt, 'the last use was not recorded');

  t.is((await root().request('/api/v1/projects/team/robots/revoked', { method: 'DELETE' })).status, 204);
  t.is((await bearer(answer.token).getManifest('team/a', 'v1')).status, 401);
  t.is((await createClient(registry.url, { Authorization: basic(...ci) }).getManifest('team/a', 'v1')).status, 401);
  t.is((await oauth({ grant_type: 'refresh_token', refresh_token: answer.refresh_token! })).status, 401);
  // Made again under the same name, it is another robot: the old secret and tokens stay dead.
  const again = await robot('team', 'revoked', 'developer');
  t.is((await bearer(answer.token).getManifest('team/a', 'v1')).status, 401);
  t.is((await getToken([], ci)).status, 401);
  t.is((await getToken([], again)).status, 200);
  const audit = await registry.registry.db.query<{ action: string; actor: string }>(
    `SELECT action, actor FROM audit_log WHERE project = 'team' AND detail->>'robot' = 'revoked' ORDER BY id`,
  );
  t.deepEqual(
    audit.map((r) => r.action),
    ['robot.create', 'robot.revoke', 'robot.create'],
  );
  t.true(audit.every((r) => r.actor === 'root'));
});

test('an expired robot is refused everywhere', async (t) => {
  const ci = await robot('team', 'expiring', 'developer');
  await registry.registry.db.query(
    `UPDATE robots SET expires_at = now() - interval '1 second' WHERE project = 'team' AND name = 'expiring'`,
  );
  t.is((await getToken([], ci)).status, 401);
  t.is((await createClient(registry.url, { Authorization: basic(...ci) }).getManifest('team/a', 'v1')).status, 401);
  t.is((await oauth({ grant_type: 'password', username: ci[0], password: ci[1] })).status, 401);
});

test('signet robot create, list and revoke', async (t) => {
  const created = await signet(['robot', 'create', 'team', 'cli', '--role', 'guest', '--expires', '90d']);
  t.regex(created.stdout, /^created robot\$team\+cli \(guest, expires \d{4}-/);
  const secret = /^secret: (\S+)$/m.exec(created.stdout)?.[1];
  t.truthy(secret);
  t.is((await getToken([], ['robot$team+cli', secret!])).status, 200);
  const listed = await signet(['robot', 'list', 'team']);
  t.regex(listed.stdout, /^robot\$team\+cli\s+guest\s+\d{4}-\S+\s+\d{4}-/m, 'the list shows role, expiry and last use');
  t.false(listed.stdout.includes(secret!));
  const refused = await signet(['robot', 'create', 'team', 'bad', '--expires', '90 days']).catch((err: { stderr: string }) => err);
  t.regex(refused.stderr, /--expires 90 days: expected a number of days such as 90d/);
  t.regex((await signet(['robot', 'revoke', 'team', 'robot$team+cli'])).stdout, /^revoked robot robot\$team\+cli of team$/m);
  t.is((await getToken([], ['robot$team+cli', secret!])).status, 401);
});

test('hostile token requests: any query, form, credentials or token get a 200 or a 4xx OCI error, never a 5xx', async (t) => {
  const printable = (max: number) => fc.stringMatching(new RegExp(`^[\\x20-\\x7e]{0,${max}}$`));
  const scopeish = fc.oneof(
    printable(60),
    fc.constantFrom('repository:team/a:pull', 'repository:team/a:*', 'registry:catalog:*', 'repository::', ':::', 'repository:a:b:c:d'),
  );
  const authorization = fc.oneof(
    fc.constant(undefined),
    fc.constantFrom(
      basic('fuzz', USERS.fuzz!),
      basic('fuzz', 'x'),
      basic('robot$team+nope', 'x'),
      basic('robot$', ''),
      'Bearer',
      'Bearer x.y.z',
      'Basic Og==',
    ),
    printable(80),
  );
  const form = fc.dictionary(
    fc.constantFrom('grant_type', 'username', 'password', 'refresh_token', 'scope', 'service', 'access_type', 'client_id'),
    fc.oneof(scopeish, fc.constantFrom('password', 'refresh_token', 'offline', 'signet', 'fuzz', USERS.fuzz!)),
  );
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(scopeish, { maxLength: 4 }), form, authorization, async (post, scopes, fields, auth) => {
      const headers: Record<string, string> = auth === undefined ? {} : { Authorization: auth };
      const res = post
        ? await fetch(`${registry.url}/token`, {
            method: 'POST',
            headers: { ...headers, 'Content-Type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams(fields),
          })
        : await fetch(`${registry.url}/token?${new URLSearchParams([...scopes.map((s) => ['scope', s]), ...Object.entries(fields)])}`, {
            headers,
          });
      const text = await res.text();
      if (res.status === 200) return 'token' in (JSON.parse(text) as object);
      return res.status >= 400 && res.status < 500 && Array.isArray((JSON.parse(text) as { errors?: unknown }).errors);
    }),
    { numRuns: 80 },
  );
  t.pass();
});

test('read-only mode: the token service still answers POST, which writes nothing', async (t) => {
  const readOnly = await startTestRegistry({
    env: { REGISTRY_AUTH: 'token', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd, REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true' },
  });
  try {
    const res = await fetch(`${readOnly.url}/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'password', username: 'outsider', password: USERS.outsider!, service: 'signet' }),
    });
    t.is(res.status, 200);
    t.is(
      (
        await fetch(`${readOnly.url}/v2/team/a/blobs/uploads/`, {
          method: 'POST',
          headers: { Authorization: basic('outsider', USERS.outsider!) },
        })
      ).status,
      405,
    );
  } finally {
    await readOnly.close();
  }
});
