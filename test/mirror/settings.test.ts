// Mirror settings through the management API: stored, shown without the credentials (which are
// never logged nor written to the audit log either), validated, and a mirror project refuses pushes
// with a message saying why, registry admins included.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { run, runExpectingFailure } from '../helpers/run.js';

const SECRET = 'upstream-s3cret-never-shown';
let dir: string;
let registry: TestRegistry;
let logs: CapturedLog;
const root = { Authorization: basic('root', 'root-pw') };

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-mirror-settings-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw', alice: 'alice-pw' });
  logs = captureLog('debug');
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
    log: logs.log,
  });
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function api(method: string, urlPath: string, body?: unknown): Promise<Response> {
  return fetch(`${registry.url}${urlPath}`, {
    method,
    headers: { ...root, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

test('a mirror project keeps its settings and never shows or logs the password', async (t) => {
  const created = await api('POST', '/api/v1/projects', {
    name: 'redhat',
    mirror: {
      upstream: 'https://registry.example.com/',
      username: 'bot',
      password: SECRET,
      lookaside: 'https://sigs.example.com/sigstore/',
    },
  });
  t.is(created.status, 201);
  const text = await created.text();
  t.false(text.includes(SECRET));
  const shown = JSON.parse(text) as { mirror: Record<string, unknown> };
  t.deepEqual(shown.mirror, {
    upstream: 'https://registry.example.com',
    credentials: true,
    lookaside: 'https://sigs.example.com/sigstore',
    signedPrefix: 'registry.example.com',
    useExtension: true,
    tagTtlSeconds: null,
    sync: { rules: [], intervalSeconds: 0 },
  });
  const patched = await api('PATCH', '/api/v1/projects/redhat', {
    mirror: { useExtension: false, signedPrefix: 'registry.access.redhat.com' },
  });
  t.is(patched.status, 200);
  const after = (await patched.json()) as { mirror: Record<string, unknown> };
  t.is(after.mirror.credentials, true, 'a PATCH of other fields keeps the credentials');
  t.is(after.mirror.useExtension, false);
  t.is(after.mirror.signedPrefix, 'registry.access.redhat.com');
  const listed = await (await api('GET', '/api/v1/projects/redhat')).text();
  t.false(listed.includes(SECRET));
  const audit = await registry.registry.db.query<{ detail: unknown }>(`SELECT detail FROM audit_log WHERE project = 'redhat'`);
  t.true(audit.length >= 2);
  t.false(JSON.stringify(audit).includes(SECRET), 'the audit log holds no password');
  t.false(JSON.stringify(logs.lines).includes(SECRET), 'no log line holds the password');
});

test('mirror settings are validated', async (t) => {
  const bad = [
    { upstream: 'ftp://example.com' },
    { upstream: 'https://user:pw@example.com' },
    { upstream: 'https://example.com/UPPER' },
    { upstream: 'https://example.com', username: 'bot' },
    { upstream: 'https://example.com', signedPrefix: 'example.com/app:tag' },
    { upstream: 'https://example.com', sync: { rules: [{ repository: '../x', tags: '*' }], intervalSeconds: 0 } },
    { upstream: 'https://example.com', extra: true },
  ];
  for (const [i, mirror] of bad.entries()) {
    const res = await api('POST', '/api/v1/projects', { name: `bad${i}`, mirror });
    t.is(res.status, 400, JSON.stringify(mirror));
  }
});

test('pushes into a mirror project are refused, registry admins included', async (t) => {
  await api('POST', '/api/v1/projects', { name: 'mirrored', mirror: { upstream: 'http://127.0.0.1:9' } });
  const client = createClient(registry.url, root);
  const image = makeImage();
  const blob = await client.pushBlob('mirrored/app', image.config);
  t.is(blob.status, 403);
  const body = (await blob.json()) as OciErrorBody;
  t.is(body.errors[0]?.code, 'DENIED');
  t.regex(body.errors[0]?.message ?? '', /mirrors http:\/\/127\.0\.0\.1:9 and takes no pushes/);
  const manifest = await client.pushManifest('mirrored/app', 'v1', image.manifest);
  t.is(manifest.status, 403);
  // Stops being a mirror: pushes are accepted again.
  t.is((await api('PATCH', '/api/v1/projects/mirrored', { mirror: null })).status, 200);
  t.is((await client.pushBlob('mirrored/app', image.config)).status, 201);
});

test('only registry administrators set mirror settings: a project admin cannot point the server at a URL', async (t) => {
  t.is((await api('POST', '/api/v1/projects', { name: 'owned' })).status, 201);
  t.is((await api('PUT', '/api/v1/projects/owned/members/alice', { role: 'admin' })).status, 200);
  const asAlice = (method: string, body: unknown): Promise<Response> =>
    fetch(`${registry.url}/api/v1/projects/owned`, {
      method,
      headers: { Authorization: basic('alice', 'alice-pw'), 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  const res = await asAlice('PATCH', { mirror: { upstream: 'http://169.254.169.254/latest' } });
  t.is(res.status, 403);
  t.regex(((await res.json()) as OciErrorBody).errors[0]?.message ?? '', /only registry administrators set mirror settings/);
  t.is((await asAlice('PATCH', { public: true })).status, 200, "other settings stay the project admin's");
  const project = (await (await api('GET', '/api/v1/projects/owned')).json()) as { mirror?: unknown };
  t.is(project.mirror, undefined);
});

test('signet project create --mirror-of takes the upstream password from SIGNET_MIRROR_PASSWORD only', async (t) => {
  const cli = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, ['--import', 'tsx', path.resolve('server/main.ts'), '--registry', registry.url, '--user', 'root', ...args], {
      env: { ...process.env, SIGNET_PASSWORD: 'root-pw', ...env },
      timeoutMs: 60_000,
    });
  const created = await cli(
    [
      'project',
      'create',
      'clirh',
      '--mirror-of',
      'https://registry.example.com',
      '--mirror-user',
      'bot',
      '--lookaside',
      'https://sigs.example.com',
    ],
    {
      SIGNET_MIRROR_PASSWORD: SECRET,
    },
  );
  t.regex(created.stdout, /created private mirror of https:\/\/registry\.example\.com clirh/);
  const shown = await cli(['project', 'show', 'clirh']);
  t.false(shown.stdout.includes(SECRET));
  t.regex(shown.stdout, /"credentials": true/);
  const refused = await runExpectingFailure(
    process.execPath,
    [
      '--import',
      'tsx',
      path.resolve('server/main.ts'),
      '--registry',
      registry.url,
      '--user',
      'root',
      'project',
      'create',
      'clirh2',
      '--mirror-of',
      'https://registry.example.com',
      '--mirror-user',
      'bot',
    ],
    {
      env: { ...process.env, SIGNET_PASSWORD: 'root-pw', SIGNET_MIRROR_PASSWORD: '' },
      timeoutMs: 60_000,
    },
  );
  t.regex(refused.stderr, /needs the upstream password in SIGNET_MIRROR_PASSWORD/);
  const set = await cli(['project', 'set', 'clirh', '--signature-extension', 'off', '--signed-prefix', 'registry.access.redhat.com']);
  t.regex(set.stdout, /mirror of https:\/\/registry\.example\.com/);
  const after = JSON.parse((await cli(['project', 'show', 'clirh'])).stdout) as {
    mirror: { useExtension: boolean; signedPrefix: string; credentials: boolean };
  };
  t.deepEqual(
    [after.mirror.useExtension, after.mirror.signedPrefix, after.mirror.credentials],
    [false, 'registry.access.redhat.com', true],
  );
});

test("a public mirror's upstream, sync rules and creator are for its members: not for anonymous callers nor in the audit log's credentials", async (t) => {
  t.is(
    (
      await api('POST', '/api/v1/projects', {
        name: 'vendor',
        public: true,
        mirror: { upstream: 'http://registry.internal.example:5000/vendor', username: 'svc-mirror-bot', password: SECRET },
      })
    ).status,
    201,
  );
  t.true([200, 201].includes((await api('PUT', '/api/v1/projects/vendor/members/alice', { role: 'guest' })).status));
  const anonymous = await (await fetch(`${registry.url}/api/v1/projects`)).text();
  t.true(anonymous.includes('"vendor"'));
  for (const hidden of ['registry.internal.example', 'svc-mirror-bot', 'createdBy', '"root"']) t.false(anonymous.includes(hidden), hidden);
  const one = await (await fetch(`${registry.url}/api/v1/projects/vendor`)).text();
  for (const hidden of ['registry.internal.example', 'svc-mirror-bot', 'createdBy']) t.false(one.includes(hidden), hidden);
  // A member sees the settings (without the password); the audit log, which guests read, names no user of the upstream.
  const guest = { Authorization: basic('alice', 'alice-pw') };
  const asMember = (await (await fetch(`${registry.url}/api/v1/projects/vendor`, { headers: guest })).json()) as {
    createdBy: string;
    mirror: { upstream: string; credentials: boolean };
  };
  t.is(asMember.createdBy, 'root');
  t.deepEqual([asMember.mirror.upstream, asMember.mirror.credentials], ['http://registry.internal.example:5000/vendor', true]);
  const audit = await (await fetch(`${registry.url}/api/v1/projects/vendor/audit`, { headers: guest })).text();
  t.true(audit.includes('project.create'));
  t.false(audit.includes('svc-mirror-bot'));
  t.false(audit.includes(SECRET));
});
