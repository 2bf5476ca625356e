// The console's server side over real HTTP: the page only for browsers, under its CSP; sign-in
// sessions and what a forged request gets; the per-tag trust state and the signed-only preview,
// which must say what a pull actually gets; the audit log; the client configuration exports.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import YAML from 'yaml';
import { basic, replaceHtpasswd, writeHtpasswd } from '../helpers/auth.js';
import { until } from '../helpers/wait.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, makeImage, type Image } from '../helpers/oci-layout.js';
import { descriptorOf } from '../helpers/signature-artifacts.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeKey, payload, sign, type TestKey } from '../helpers/signing.js';

const USERS = { root: 'root-pw', dev: 'dev-pw', maint: 'maint-pw', outsider: 'out-pw', leaver: 'leaver-pw' };
let registry: TestRegistry;
let dir: string;
let trusted: TestKey;
let stranger: TestKey;
const as = (user: keyof typeof USERS) => createClient(registry.url, { Authorization: basic(user, USERS[user]) });

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-console-api-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  // A stand-in console build: the serving rules do not depend on what the page holds.
  await mkdir(path.join(dir, 'console', 'assets'), { recursive: true });
  await writeFile(path.join(dir, 'console', 'index.html'), '<!doctype html><script type="module" src="/assets/app-1.js"></script>');
  await writeFile(path.join(dir, 'console', 'assets', 'app-1.js'), 'console.log("console")\n'.repeat(50));
  registry = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
      REGISTRY_AUTH_ADMINS: 'root',
      REGISTRY_CONSOLE_DIRECTORY: path.join(dir, 'console'),
    },
  });
  [trusted, stranger] = await Promise.all([makeKey({ name: 'Trusted' }), makeKey({ name: 'Stranger' })]);
});
test.after.always(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

async function signIn(user: keyof typeof USERS, headers: Record<string, string> = {}) {
  const res = await fetch(`${registry.url}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Signet-Console': '1', ...headers },
    body: JSON.stringify({ user, password: USERS[user] }),
  });
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const body = res.ok ? ((await res.json()) as { csrfToken: string }) : undefined;
  return { res, cookie, csrf: body?.csrfToken ?? '', setCookie: res.headers.get('set-cookie') ?? '' };
}

/** A POST with an Origin header (fetch will not send one of ours). */
function postFromOrigin(pathname: string, body: string, origin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${registry.url}${pathname}`,
      { method: 'POST', headers: { Origin: origin, 'Content-Type': 'application/json' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function project(name: string, members: Record<string, string>): Promise<void> {
  t0((await as('root').request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: false }) })).status, 201);
  for (const [user, role] of Object.entries(members)) {
    await as('root').request(`/api/v1/projects/${name}/members/${user}`, { method: 'PUT', body: JSON.stringify({ role }) });
  }
}
function t0(actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`expected ${expected}, got ${actual}`);
}

async function putSignature(repo: string, digest: string, bytes: Uint8Array): Promise<void> {
  const res = await as('maint').request(`/extensions/v2/${repo}/signatures/${digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${digest}@${'0'.repeat(31)}${Math.floor(Math.random() * 10)}`,
      type: 'atomic',
      content: Buffer.from(bytes).toString('base64'),
    }),
  });
  t0(res.status, 201);
}

async function push(repo: string, tag: string, image: Image = makeImage({ layers: 1 })): Promise<Image> {
  t0((await as('maint').pushImage(repo, image, tag)).status, 201);
  return image;
}

test('/ serves the console to browsers only, under a strict CSP; other clients and /v2/ are untouched', async (t) => {
  const page = await fetch(`${registry.url}/`, { headers: { Accept: 'text/html,application/xhtml+xml' } });
  t.is(page.status, 200);
  const csp = page.headers.get('content-security-policy') ?? '';
  t.regex(csp, /script-src 'self'(;|$)/);
  t.notRegex(csp, /unsafe-inline|unsafe-eval/);
  t.regex(csp, /frame-ancestors 'none'/);
  t.regex(await page.text(), /<script type="module" src="\/assets\/app-1.js">/);
  const asset = await fetch(`${registry.url}/assets/app-1.js`, { headers: { 'Accept-Encoding': 'gzip' } });
  t.is(asset.status, 200);
  t.regex(asset.headers.get('cache-control') ?? '', /immutable/);
  t.regex(asset.headers.get('content-type') ?? '', /javascript/);
  // curl, docker, skopeo: no HTML asked for, the registry's own 404 as before.
  const plain = await fetch(`${registry.url}/`);
  t.is(plain.status, 404);
  t.is(((await plain.json()) as { errors: { code: string }[] }).errors[0]?.code, 'NOT_FOUND');
  t.is((await fetch(`${registry.url}/v2/`)).status, 401);
  t.is((await fetch(`${registry.url}/assets/..%2fpassword`)).status, 404);
});

test('sign-in: a cookie that is HttpOnly, SameSite=Strict and limited to the API; no Basic prompt for the console', async (t) => {
  const wrong = await fetch(`${registry.url}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Signet-Console': '1' },
    body: JSON.stringify({ user: 'dev', password: 'nope' }),
  });
  t.is(wrong.status, 401);
  t.is(wrong.headers.get('www-authenticate'), null);
  const { res, setCookie, cookie } = await signIn('dev');
  t.is(res.status, 200);
  t.regex(setCookie, /httponly/i);
  t.regex(setCookie, /samesite=strict/i);
  t.regex(setCookie, /path=\/api\/v1/i);
  const who = (await (await fetch(`${registry.url}/api/v1/session`, { headers: { Cookie: cookie } })).json()) as { user?: string };
  t.is(who.user, 'dev');
});

test('forged requests: a cookie write without the CSRF token, a sign-in from another origin, a cookie on /v2 and after sign-out', async (t) => {
  await project('forge', { dev: 'admin' });
  const { cookie, csrf } = await signIn('dev');
  const patch = (headers: Record<string, string>) =>
    fetch(`${registry.url}/api/v1/projects/forge`, {
      method: 'PATCH',
      headers: { Cookie: cookie, 'Content-Type': 'application/json', ...headers },
      body: '{"public":true}',
    });
  const forged = await patch({});
  t.is(forged.status, 403);
  t.regex(await forged.text(), /X-CSRF-Token/);
  t.is((await patch({ 'X-CSRF-Token': `${csrf.slice(0, -1)}x` })).status, 403);
  t.is((await patch({ 'X-CSRF-Token': csrf })).status, 200);
  // A page elsewhere posting the sign-in form (login CSRF).
  t.is(await postFromOrigin('/api/v1/session', JSON.stringify({ user: 'dev', password: USERS.dev }), 'https://evil.example'), 403);
  t.is(await postFromOrigin('/api/v1/session', JSON.stringify({ user: 'dev', password: USERS.dev }), registry.url), 200);
  // The cookie is not a registry credential: /v2 writes need Basic credentials.
  const image = makeImage({ layers: 1 });
  const upload = await fetch(`${registry.url}/v2/forge/app/blobs/uploads/?digest=${image.layers[0]!.digest}`, {
    method: 'POST',
    headers: { Cookie: cookie, 'X-CSRF-Token': csrf },
    body: new Uint8Array(image.layers[0]!.data),
  });
  t.is(upload.status, 401);
  // Signed out: the same cookie is nobody's.
  t.is(
    (await fetch(`${registry.url}/api/v1/session`, { method: 'DELETE', headers: { Cookie: cookie, 'X-CSRF-Token': csrf } })).status,
    204,
  );
  t.is((await patch({ 'X-CSRF-Token': csrf })).status, 401);
  const who = (await (await fetch(`${registry.url}/api/v1/session`, { headers: { Cookie: cookie } })).json()) as { user?: string };
  t.is(who.user, undefined);
});

test('trust state per tag is what a pull gets: verified, unsigned, untrusted key, signed for another tag; the preview lists what signed-only would refuse', async (t) => {
  await project('trust', { maint: 'maintainer', dev: 'developer' });
  await as('root').request('/api/v1/projects/trust/keys', { method: 'POST', body: new Uint8Array(trusted.publicBinary) });
  const signed = await push('trust/app', 'signed');
  await putSignature(
    'trust/app',
    signed.manifest.digest,
    await sign(trusted, payload(signed.manifest.digest, `${registry.host}/trust/app:signed`)),
  );
  await push('trust/app', 'unsigned');
  const foreign = await push('trust/app', 'foreign');
  await putSignature(
    'trust/app',
    foreign.manifest.digest,
    await sign(stranger, payload(foreign.manifest.digest, `${registry.host}/trust/app:foreign`)),
  );
  const moved = await push('trust/app', 'moved');
  await putSignature(
    'trust/app',
    moved.manifest.digest,
    await sign(trusted, payload(moved.manifest.digest, `${registry.host}/trust/app:elsewhere`)),
  );

  type Tag = {
    name: string;
    state: string;
    gate: { enforced: boolean; served: boolean; reason?: string };
    signatures: { accepted: boolean; signer?: { fingerprint: string }; identity?: string }[];
  };
  const trust = async (): Promise<Map<string, Tag>> => {
    const res = await as('dev').request('/api/v1/projects/trust/repositories/app/trust');
    t.is(res.status, 200);
    return new Map(((await res.json()) as { tags: Tag[] }).tags.map((tag) => [tag.name, tag]));
  };
  let tags = await trust();
  t.is(tags.get('signed')?.state, 'verified');
  t.is(tags.get('signed')?.signatures[0]?.signer?.fingerprint, trusted.fingerprint.toUpperCase());
  t.is(tags.get('signed')?.signatures[0]?.identity, `${registry.host}/trust/app:signed`);
  t.is(tags.get('unsigned')?.state, 'unsigned');
  t.is(tags.get('foreign')?.state, 'untrusted');
  t.is(tags.get('moved')?.state, 'other-reference');
  t.false(tags.get('unsigned')?.gate.enforced);

  const preview = (await (await as('dev').request('/api/v1/projects/trust/gate-preview')).json()) as {
    refused: { tag: string; reason: string }[];
  };
  t.deepEqual(preview.refused.map((r) => r.tag).sort(), ['foreign', 'moved', 'unsigned']);

  await as('root').request('/api/v1/projects/trust', { method: 'PATCH', body: JSON.stringify({ signedOnly: true }) });
  tags = await trust();
  t.true(tags.get('unsigned')?.gate.enforced);
  t.true(tags.get('signed')?.gate.served);
  // The reason shown is the one the gate gives the client that pulls.
  for (const name of ['unsigned', 'foreign', 'moved']) {
    const pulled = await as('dev').getManifest('trust/app', name);
    t.is(pulled.status, 412);
    const message = ((await pulled.json()) as { errors: { message: string }[] }).errors[0]?.message;
    t.false(tags.get(name)?.gate.served);
    t.is(tags.get(name)?.gate.reason, message);
  }
  // Paging: one tag a page, in order, with `next`.
  const first = (await (await as('dev').request('/api/v1/projects/trust/repositories/app/trust?n=1')).json()) as {
    tags: Tag[];
    next?: string;
  };
  t.is(first.tags.length, 1);
  t.is(first.next, 'foreign');
  // Someone who may not pull learns nothing.
  t.is((await as('outsider').request('/api/v1/projects/trust/repositories/app/trust')).status, 403);
  t.is((await as('outsider').request('/api/v1/projects/trust/gate-preview')).status, 403);
});

test('the audit log lists changes newest first to members; the project tells a caller what they may do', async (t) => {
  await project('audited', { dev: 'developer' });
  await as('root').request('/api/v1/projects/audited/members/dev', { method: 'PUT', body: JSON.stringify({ role: 'maintainer' }) });
  const res = await as('dev').request('/api/v1/projects/audited/audit?n=2');
  t.is(res.status, 200);
  const page = (await res.json()) as { entries: { action: string; actor?: string; detail: { role?: string } }[]; next?: number };
  t.is(page.entries[0]?.action, 'member.set');
  t.is(page.entries[0]?.actor, 'root');
  t.is(page.entries[0]?.detail.role, 'maintainer');
  t.is(typeof page.next, 'number');
  t.is((await as('outsider').request('/api/v1/projects/audited/audit')).status, 403);
  const seen = (await (await as('dev').request('/api/v1/projects/audited')).json()) as { permissions: Record<string, boolean> };
  t.deepEqual(seen.permissions, { push: true, delete: true, admin: false });
});

test('client configuration exports: the MachineConfig and KBS resources carry the same policy as policy.json', async (t) => {
  await project('exports', {});
  await as('root').request('/api/v1/projects/exports/keys', { method: 'POST', body: new Uint8Array(trusted.publicBinary) });
  const policy = await (await as('root').request('/api/v1/projects/exports/policy.json?default=accept')).text();
  const registriesD = await (await as('root').request('/api/v1/projects/exports/registries.d.yaml')).text();
  const mc = YAML.parse(await (await as('root').request('/api/v1/projects/exports/machineconfig.yaml?role=master')).text()) as {
    kind: string;
    metadata: { name: string; labels: Record<string, string> };
    spec: { config: { storage: { files: { path: string; mode: number; contents: { source: string } }[] } } };
  };
  t.is(mc.kind, 'MachineConfig');
  t.is(mc.metadata.labels['machineconfiguration.openshift.io/role'], 'master');
  const files = new Map(mc.spec.config.storage.files.map((f) => [f.path, f]));
  const decode = (source: string): string => {
    const match = /^data:text\/plain;charset=utf-8;base64,(.*)$/.exec(source);
    return Buffer.from(match?.[1] ?? '', 'base64').toString('utf8');
  };
  t.is(decode(files.get('/etc/containers/policy.json')!.contents.source), policy);
  t.is(decode(files.get('/etc/containers/registries.d/signet-exports.yaml')!.contents.source), registriesD);
  t.is(files.get('/etc/containers/policy.json')!.mode, 0o644);
  const kbs = (await (await as('root').request('/api/v1/projects/exports/kbs-resources.json')).json()) as Record<string, string>;
  const securityPolicy = JSON.parse(kbs['security-policy']!) as {
    default: { type: string }[];
    transports: { docker: Record<string, { keyData?: string }[]> };
  };
  t.is(securityPolicy.default[0]?.type, 'reject');
  t.is(securityPolicy.transports.docker[`${registry.host}/exports`]?.[0]?.keyData, Buffer.from(trusted.publicBinary).toString('base64'));
  t.is(kbs['sigstore-config'], `docker:\n  ${registry.host}/exports:\n    sigstore: http://${registry.host}/sigstore\n`);
  t.is((await as('root').request('/api/v1/projects/exports/machineconfig.yaml?role=Bad_Role')).status, 400);
});

test('deleting a tag or manifest from the API takes the maintainer role', async (t) => {
  await project('del', { maint: 'maintainer', dev: 'developer' });
  const image = await push('del/app', 'v1');
  await push('del/app', 'v2', image);
  t.is((await as('dev').request('/api/v1/projects/del/repositories/app/tags/v1', { method: 'DELETE' })).status, 403);
  t.is((await as('maint').request('/api/v1/projects/del/repositories/app/tags/v1', { method: 'DELETE' })).status, 204);
  t.is((await as('maint').getManifest('del/app', 'v1')).status, 404);
  t.is((await as('maint').getManifest('del/app', 'v2')).status, 200);
  t.is(
    (await as('maint').request(`/api/v1/projects/del/repositories/app/manifests/${image.manifest.digest}`, { method: 'DELETE' })).status,
    204,
  );
  t.is((await as('maint').getManifest('del/app', 'v2')).status, 404);
});

test.serial("a session ends when its user's password changes in htpasswd", async (t) => {
  const { cookie } = await signIn('leaver');
  const who = async (): Promise<string | undefined> =>
    ((await (await fetch(`${registry.url}/api/v1/session`, { headers: { Cookie: cookie } })).json()) as { user?: string }).user;
  t.is(await who(), 'leaver');
  await replaceHtpasswd(path.join(dir, 'htpasswd'), { ...USERS, leaver: 'a-new-password' });
  t.true(await until(async () => (await who()) === undefined, 10_000), 'the old session is refused once the file is re-read');
});

test('status is for registry admins: version, storage, database and the replicas seen', async (t) => {
  const res = await as('root').request('/api/v1/status');
  t.is(res.status, 200);
  const status = (await res.json()) as { version: string; database: string; storage: { driver: string }; replicas: { host: string }[] };
  t.regex(status.version, /^\d+\.\d+\.\d+/);
  t.is(status.storage.driver, 'filesystem');
  t.regex(status.database, /PGlite/);
  t.is(status.replicas.length, 1);
  t.is((await as('dev').request('/api/v1/status')).status, 403);
});

/** A robot of `project` made by root through the API: its account name and secret. */
async function robot(project: string, name: string, role: string): Promise<{ name: string; secret: string }> {
  const res = await as('root').request(`/api/v1/projects/${project}/robots`, {
    method: 'POST',
    body: JSON.stringify({ name, role, expiresInDays: 30 }),
  });
  t0(res.status, 201);
  return (await res.json()) as { name: string; secret: string };
}

async function robotSignIn(name: string, secret: string) {
  const res = await fetch(`${registry.url}/api/v1/session`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Signet-Console': '1' },
    body: JSON.stringify({ user: name, password: secret }),
  });
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  return { res, cookie, body: res.ok ? ((await res.json()) as Record<string, unknown>) : undefined };
}

test('only project admins list, create and revoke robots; members below admin are refused by the API', async (t) => {
  await project('botadmin', { dev: 'developer', maint: 'maintainer', outsider: 'admin' });
  await robot('botadmin', 'ci', 'guest');
  for (const user of ['dev', 'maint'] as const) {
    const client = as(user);
    t.is((await client.request('/api/v1/projects/botadmin/robots')).status, 403, `${user} listed robots`);
    const made = await client.request('/api/v1/projects/botadmin/robots', {
      method: 'POST',
      body: JSON.stringify({ name: `by-${user}`, role: 'guest', expiresInDays: 1 }),
    });
    t.is(made.status, 403, `${user} made a robot`);
    t.is((await client.request('/api/v1/projects/botadmin/robots/ci', { method: 'DELETE' })).status, 403, `${user} revoked a robot`);
  }
  // A project admin who is no registry admin may.
  const listed = (await (await as('outsider').request('/api/v1/projects/botadmin/robots')).json()) as { robots: { name: string }[] };
  t.deepEqual(
    listed.robots.map((r) => r.name),
    ['robot$botadmin+ci'],
  );
  t.is((await as('outsider').request('/api/v1/projects/botadmin/robots/ci', { method: 'DELETE' })).status, 204);
});

test('a robot signs in to a read-only session of its own project: management is refused with 403, and revocation ends the session', async (t) => {
  await project('bots', { maint: 'maintainer' });
  t0(
    (await as('root').request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'bots-public', public: true }) })).status,
    201,
  );
  await push('bots/app', 'v1');
  // A maintainer robot: its role could delete and sign, its session may not.
  const ci = await robot('bots', 'ci', 'maintainer');
  const { res, cookie, body } = await robotSignIn(ci.name, ci.secret);
  t.is(res.status, 200);
  t.like(body, { user: 'robot$bots+ci', admin: false, robot: { project: 'bots', role: 'maintainer', readOnly: true } });
  const csrf = String(body?.csrfToken);
  const call = (method: string, pathname: string, json?: unknown) =>
    fetch(`${registry.url}${pathname}`, {
      method,
      headers: { Cookie: cookie, 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' },
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });

  // What its grant covers: its own project's repositories, tags and trust state.
  for (const pathname of ['', '/repositories', '/repositories/app/tags', '/repositories/app/trust', '/keys']) {
    t.is((await call('GET', `/api/v1/projects/bots${pathname}`)).status, 200, pathname);
  }
  const listed = (await (await call('GET', '/api/v1/projects')).json()) as { projects: { name: string }[] };
  t.deepEqual(
    listed.projects.map((p) => p.name),
    ['bots'],
    'a public project elsewhere is not what its grant covers',
  );
  const seen = (await (await call('GET', '/api/v1/projects/bots')).json()) as { permissions: Record<string, boolean>; members?: unknown };
  t.deepEqual(seen.permissions, { push: false, delete: false, admin: false });
  t.is(seen.members, undefined);

  // Everything else, with its CSRF token: refused by the API with the registry's error shape.
  const refused: [string, string, unknown?][] = [
    ['PATCH', '/api/v1/projects/bots', { public: true }],
    ['DELETE', '/api/v1/projects/bots'],
    ['GET', '/api/v1/projects/bots/members'],
    ['PUT', '/api/v1/projects/bots/members/dev', { role: 'admin' }],
    ['GET', '/api/v1/projects/bots/robots'],
    ['POST', '/api/v1/projects/bots/robots', { name: 'child', role: 'guest', expiresInDays: 1 }],
    ['DELETE', '/api/v1/projects/bots/robots/ci'],
    ['POST', '/api/v1/projects/bots/keys', 'not a key'],
    ['DELETE', '/api/v1/projects/bots/keys/1'],
    ['GET', '/api/v1/projects/bots/audit'],
    ['DELETE', '/api/v1/projects/bots/repositories/app/tags/v1'],
    ['POST', '/api/v1/projects/bots/mirror/run'],
    ['POST', '/api/v1/projects', { name: 'botland' }],
    ['GET', '/api/v1/status'],
    ['POST', '/api/v1/gc', { dryRun: true }],
    ['GET', '/api/v1/projects/bots-public/repositories'],
  ];
  for (const [method, pathname, json] of refused) {
    const answer = await call(method, pathname, json);
    t.is(answer.status, 403, `${method} ${pathname}`);
    const error = ((await answer.json()) as { errors: { code: string; message: string }[] }).errors[0];
    t.is(error?.code, 'DENIED', `${method} ${pathname}`);
    t.notRegex(error?.message ?? '', /CSRF/);
  }
  t.is((await as('maint').getManifest('bots/app', 'v1')).status, 200, 'the refused delete deleted nothing');
  t.like(await (await call('GET', '/api/v1/session')).json(), { user: ci.name, robot: { readOnly: true } });
  // Its Basic credentials are not a session: they keep what its role allows (say so, too).
  const viaBasic = await fetch(`${registry.url}/api/v1/session`, { headers: { Authorization: basic(ci.name, ci.secret) } });
  t.like(await viaBasic.json(), { user: ci.name, admin: false, robot: { project: 'bots', readOnly: false } });

  // Revoked while the session is live: the next request is an anonymous one.
  t.is((await as('root').request('/api/v1/projects/bots/robots/ci', { method: 'DELETE' })).status, 204);
  t.is((await call('GET', '/api/v1/projects/bots')).status, 401);
  t.is(((await (await call('GET', '/api/v1/session')).json()) as { user?: string }).user, undefined);
  t.is((await robotSignIn(ci.name, ci.secret)).res.status, 401);
  // Made again under the same name, it is another robot: the old session stays over.
  const again = await robot('bots', 'ci', 'guest');
  t.is((await call('GET', '/api/v1/projects/bots')).status, 401);
  t.is((await robotSignIn(again.name, again.secret)).res.status, 200);
});

test('robots that cannot sign in: expired, unknown, of another project, with a wrong secret', async (t) => {
  await project('botsign', {});
  const old = await robot('botsign', 'old', 'guest');
  await registry.registry.db.query(`UPDATE robots SET expires_at = now() - interval '1 second' WHERE project = 'botsign' AND name = 'old'`);
  const live = await robot('botsign', 'live', 'guest');
  for (const [name, secret] of [
    [old.name, old.secret],
    ['robot$botsign+nobody', live.secret],
    ['robot$bots+live', live.secret],
    [live.name, `${live.secret.slice(0, -1)}${live.secret.endsWith('A') ? 'B' : 'A'}`],
    [live.name, ''],
  ] as const) {
    const { res } = await robotSignIn(name, secret);
    t.is(res.status, 401, name);
    t.is(((await res.json()) as { errors: { message: string }[] }).errors[0]?.message, 'invalid username or password');
  }
  t.is((await robotSignIn(live.name, live.secret)).res.status, 200);
  // A sign-in reads the robot afresh, never from the cache a Basic login just filled (whose
  // answer would come sooner for a name in use, and here would still hold the unexpired robot).
  const basicGet = () => fetch(`${registry.url}/api/v1/projects/botsign`, { headers: { Authorization: basic(live.name, live.secret) } });
  t.is((await basicGet()).status, 200);
  await registry.registry.db.query(
    `UPDATE robots SET expires_at = now() - interval '1 second' WHERE project = 'botsign' AND name = 'live'`,
  );
  t.is((await robotSignIn(live.name, live.secret)).res.status, 401);
});

test('a trust page holds at most 8 MiB of manifests: it ends early and `next` goes on; the preview is for members', async (t) => {
  // 200 tags of 3.9 MB manifests were loaded at once: 2 GB held, 468 MB answered (adversarial testing).
  await project('heavy', { maint: 'maintainer', dev: 'developer' });
  await project('open', { maint: 'maintainer' });
  t0((await as('root').request('/api/v1/projects/open', { method: 'PATCH', body: JSON.stringify({ public: true }) })).status, 200);
  const base = await push('heavy/app', 'base');
  const heavy = (i: number) =>
    blobOf(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: descriptorOf(base.config),
          layers: base.layers.map((l) => descriptorOf(l)),
          annotations: { bulk: String(i % 10).repeat(3_000_000) },
        }),
      ),
      'application/vnd.oci.image.manifest.v1+json',
    );
  const names = ['h0', 'h1', 'h2', 'h3', 'h4'];
  for (const [i, tag] of names.entries()) t0((await as('maint').pushManifest('heavy/app', tag, heavy(i))).status, 201);
  type Page = { tags: { name: string }[]; next?: string };
  const seen: string[] = [];
  let last: string | undefined;
  let pages = 0;
  for (;;) {
    const res = await as('dev').request(`/api/v1/projects/heavy/repositories/app/trust?n=200${last ? `&last=${last}` : ''}`);
    t.is(res.status, 200);
    const page = (await res.json()) as Page;
    pages += 1;
    // Past 8 MiB no further tag is loaded: three of 3 MB at most.
    const heavyOnes = page.tags.filter((tag) => tag.name.startsWith('h')).length;
    t.true(heavyOnes <= 3, `a page of ${heavyOnes} manifests of 3 MB`);
    seen.push(...page.tags.map((tag) => tag.name));
    if (!page.next) break;
    last = page.next;
  }
  t.deepEqual(seen, ['base', ...names]);
  t.true(pages >= 2);
  // The preview: members only, public project or not.
  t.is((await fetch(`${registry.url}/api/v1/projects/open/gate-preview`)).status, 401);
  t.is((await as('outsider').request('/api/v1/projects/open/gate-preview')).status, 403);
  t.is((await as('maint').request('/api/v1/projects/open/gate-preview')).status, 200);
});
