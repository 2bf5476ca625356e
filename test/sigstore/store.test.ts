// The signature store over real HTTP: the extension API, the lookaside, the management listing.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import * as openpgp from 'openpgp';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { createClient, errorCode } from '../helpers/oci-client.js';
import { makeImage, sha256 } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeKey, payload, sign, type TestKey } from '../helpers/signing.js';

const USERS = { root: 'root-pw', dev: 'dev-pw', maint: 'maint-pw', outsider: 'out-pw' };
type User = keyof typeof USERS;
let registry: TestRegistry;
let dir: string;
let key: TestKey;
const as = (user?: User) => createClient(registry.url, user ? { Authorization: basic(user, USERS[user]) } : {});

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-sig-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  key = await makeKey();
  for (const [name, isPublic] of [
    ['pub', true],
    ['priv', false],
  ] as const) {
    await as('root').request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: isPublic }) });
    await as('root').request(`/api/v1/projects/${name}/members/dev`, { method: 'PUT', body: JSON.stringify({ role: 'developer' }) });
    await as('root').request(`/api/v1/projects/${name}/members/maint`, { method: 'PUT', body: JSON.stringify({ role: 'maintainer' }) });
  }
});
test.after.always(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

async function pushed(repo: string): Promise<string> {
  const image = makeImage({ layers: 1 });
  const res = await as('dev').pushImage(repo, image, 'v1');
  if (res.status !== 201) throw new Error(`push: ${res.status}`);
  return image.manifest.digest;
}

function extensionBody(digest: string, content: Uint8Array, name = `${digest}@${sha256(Buffer.from(content)).slice(7, 39)}`): string {
  return JSON.stringify({ schemaVersion: 2, name, type: 'atomic', content: Buffer.from(content).toString('base64') });
}

const putSig = (user: User, repo: string, digest: string, content: Uint8Array) =>
  as(user).request(`/extensions/v2/${repo}/signatures/${digest}`, { method: 'PUT', body: extensionBody(digest, content) });

const lookaside = (repo: string, digest: string, n: number) => `/sigstore/${repo}@sha256=${digest.slice(7)}/signature-${n}`;

test('GET /v2/ advertises the signature extension, 401s included', async (t) => {
  const anon = await as().request('/v2/');
  t.is(anon.status, 401);
  t.is(anon.headers.get('x-registry-supports-signatures'), '1');
  t.is((await as('dev').request('/v2/')).headers.get('x-registry-supports-signatures'), '1');
});

test('extension: PUT stores, GET lists, the lookaside serves the same bytes', async (t) => {
  const repo = 'pub/ext';
  const digest = await pushed(repo);
  const empty = await as('dev').request(`/extensions/v2/${repo}/signatures/${digest}`);
  t.is(empty.status, 200);
  t.deepEqual(await empty.json(), { signatures: [] });

  const sig = await sign(key, payload(digest, `${registry.host}/${repo}:v1`));
  const put = await putSig('dev', repo, digest, sig);
  t.is(put.status, 201, await put.clone().text());
  const listed = (await (await as('dev').request(`/extensions/v2/${repo}/signatures/${digest}`)).json()) as {
    signatures: { schemaVersion: number; name: string; type: string; content: string }[];
  };
  t.is(listed.signatures.length, 1);
  t.is(listed.signatures[0]!.schemaVersion, 2);
  t.is(listed.signatures[0]!.type, 'atomic');
  t.regex(listed.signatures[0]!.name, new RegExp(`^${digest}@[a-f0-9]{32}$`));
  t.deepEqual(Buffer.from(listed.signatures[0]!.content, 'base64'), Buffer.from(sig));

  const one = await as().request(lookaside(repo, digest, 1));
  t.is(one.status, 200);
  t.deepEqual(Buffer.from(await one.arrayBuffer()), Buffer.from(sig));
  t.is((await as().request(lookaside(repo, digest, 2))).status, 404);

  const again = await putSig('dev', repo, digest, sig);
  t.is(again.status, 409);
  t.is(await errorCode(again), 'SIGNATURE_EXISTS');
});

test('extension: bad input is refused and stores nothing', async (t) => {
  const repo = 'pub/bad';
  const digest = await pushed(repo);
  const otherDigest = sha256('another manifest');
  const cases: [string, string, number][] = [
    ['garbage content', extensionBody(digest, Buffer.from('not openpgp')), 400],
    ['signature for another manifest', extensionBody(digest, await sign(key, payload(otherDigest, `${registry.host}/${repo}:v1`))), 400],
    [
      'unknown critical field',
      extensionBody(digest, await sign(key, payload(digest, `${registry.host}/${repo}:v1`, { critical: { x: 1 } }))),
      400,
    ],
    ['wrong schemaVersion', JSON.stringify({ schemaVersion: 1, name: `${digest}@${'0'.repeat(32)}`, type: 'atomic', content: '' }), 400],
    ['bad name', extensionBody(digest, await sign(key, payload(digest, `${registry.host}/${repo}:v1`)), 'whatever'), 400],
    ['not json', '{', 400],
  ];
  for (const [what, body, status] of cases) {
    const res = await as('dev').request(`/extensions/v2/${repo}/signatures/${digest}`, { method: 'PUT', body });
    t.is(res.status, status, what);
    t.is(await errorCode(res), 'SIGNATURE_INVALID', what);
  }
  const missing = await as('dev').request(`/extensions/v2/${repo}/signatures/${otherDigest}`, {
    method: 'PUT',
    body: extensionBody(otherDigest, await sign(key, payload(otherDigest, `${registry.host}/${repo}:v1`))),
  });
  t.is(missing.status, 404);
  const listed = (await (await as('dev').request(`/extensions/v2/${repo}/signatures/${digest}`)).json()) as { signatures: unknown[] };
  t.deepEqual(listed.signatures, []);
});

test('extension: reading needs pull, writing needs push', async (t) => {
  const repo = 'priv/perm';
  const digest = await pushed(repo);
  const sig = await sign(key, payload(digest, `${registry.host}/${repo}:v1`));
  t.is((await putSig('outsider', repo, digest, sig)).status, 403);
  t.is((await as().request(`/extensions/v2/${repo}/signatures/${digest}`)).status, 401);
  t.is((await putSig('dev', repo, digest, sig)).status, 201);
});

test('lookaside: private signatures are 404 without pull permission, 200 with credentials', async (t) => {
  const repo = 'priv/look';
  const digest = await pushed(repo);
  const sig = await sign(key, payload(digest, `${registry.host}/${repo}:v1`));
  await putSig('dev', repo, digest, sig);
  t.is((await as().request(lookaside(repo, digest, 1))).status, 404);
  t.is((await as('outsider').request(lookaside(repo, digest, 1))).status, 404);
  const wrong = await createClient(registry.url, { Authorization: basic('dev', 'wrong') }).request(lookaside(repo, digest, 1));
  t.is(wrong.status, 404, 'bad credentials read as anonymous: 200 or 404 only');
  const ok = await as('dev').request(lookaside(repo, digest, 1));
  t.is(ok.status, 200);
  t.deepEqual(Buffer.from(await ok.arrayBuffer()), Buffer.from(sig));
});

test('lookaside: maintainers PUT and DELETE signature-N; numbering stays dense', async (t) => {
  const repo = 'pub/lookput';
  const digest = await pushed(repo);
  const first = await sign(key, payload(digest, `${registry.host}/${repo}:v1`));
  const second = await sign(key, payload(digest, `${registry.host}/${repo}:latest`), { armor: true });
  t.is((await as('dev').request(lookaside(repo, digest, 1), { method: 'PUT', body: new Uint8Array(first) })).status, 403);
  t.is(
    (await as('maint').request(lookaside(repo, digest, 2), { method: 'PUT', body: new Uint8Array(first) })).status,
    409,
    'signature-1 comes first',
  );
  t.is((await as('maint').request(lookaside(repo, digest, 1), { method: 'PUT', body: new Uint8Array(first) })).status, 201);
  t.is(
    (await as('maint').request(lookaside(repo, digest, 1), { method: 'PUT', body: new Uint8Array(first) })).status,
    200,
    'same bytes: no-op',
  );
  t.is(
    (await as('maint').request(lookaside(repo, digest, 1), { method: 'PUT', body: new Uint8Array(second) })).status,
    409,
    'never replaced',
  );
  t.is((await as('maint').request(lookaside(repo, digest, 2), { method: 'PUT', body: new Uint8Array(second) })).status, 201);

  // The armored upload is served in binary form, and the extension sees both.
  const two = Buffer.from(await (await as().request(lookaside(repo, digest, 2))).arrayBuffer());
  t.is(two[0]! & 0x80, 0x80, 'binary OpenPGP packet');
  const listed = (await (await as('dev').request(`/extensions/v2/${repo}/signatures/${digest}`)).json()) as { signatures: unknown[] };
  t.is(listed.signatures.length, 2);

  t.is((await as('dev').request(lookaside(repo, digest, 1), { method: 'DELETE' })).status, 403);
  t.is((await as('maint').request(lookaside(repo, digest, 1), { method: 'DELETE' })).status, 204);
  const now = Buffer.from(await (await as().request(lookaside(repo, digest, 1))).arrayBuffer());
  t.deepEqual(now, two);
  t.is((await as().request(lookaside(repo, digest, 2))).status, 404);
});

test('signatures go with their manifest', async (t) => {
  const repo = 'pub/gone';
  const image = makeImage({ layers: 1 });
  await as('dev').pushImage(repo, image, 'v1');
  const digest = image.manifest.digest;
  await putSig('dev', repo, digest, await sign(key, payload(digest, `${registry.host}/${repo}:v1`)));
  t.is((await as('maint').request(`/v2/${repo}/manifests/${digest}`, { method: 'DELETE' })).status, 202);
  await as('dev').pushManifest(repo, 'v1', image.manifest);
  t.is((await as().request(lookaside(repo, digest, 1))).status, 404);
});

test('management API lists signatures with signer, identity and trust; keys are managed per project', async (t) => {
  const repo = 'pub/trust/app';
  const digest = await pushed(repo);
  const other = await makeKey({ name: 'Stranger' });
  await putSig('dev', repo, digest, await sign(key, payload(digest, `${registry.host}/${repo}:v1`)));
  await putSig('dev', repo, digest, await sign(other, payload(digest, `${registry.host}/${repo}:v1`)));
  const list = async () =>
    (
      (await (await as('dev').request(`/api/v1/projects/pub/repositories/trust/app/signatures/${digest}`)).json()) as {
        signatures: { position: number; signerFingerprint: string; identity: string; trusted: boolean; reason?: string }[];
      }
    ).signatures;
  let sigs = await list();
  t.deepEqual(
    sigs.map((s) => s.trusted),
    [false, false],
  );
  t.is(sigs[0]!.signerFingerprint, key.fingerprint.toUpperCase());
  t.is(sigs[0]!.identity, `${registry.host}/${repo}:v1`);
  t.regex(sigs[0]!.reason ?? '', /not trusted/);

  // Only project admins manage keys.
  const armored = openpgp.armor(openpgp.enums.armor.publicKey, key.publicBinary);
  t.is((await as('maint').request('/api/v1/projects/pub/keys', { method: 'POST', body: armored })).status, 403);
  const added = await as('root').request('/api/v1/projects/pub/keys', { method: 'POST', body: armored });
  t.is(added.status, 201);
  const stored = (await added.json()) as { id: number; fingerprint: string; kind: string };
  t.is(stored.fingerprint, key.fingerprint.toUpperCase());
  t.is(stored.kind, 'openpgp');
  t.is(
    (await as('root').request('/api/v1/projects/pub/keys', { method: 'POST', body: new Uint8Array(key.publicBinary) })).status,
    200,
    'same key again',
  );
  sigs = await list();
  t.deepEqual(
    sigs.map((s) => s.trusted),
    [true, false],
  );

  const refused = await as('root').request('/api/v1/projects/pub/keys', { method: 'POST', body: 'garbage' });
  t.is(refused.status, 400);
  t.is((await as('root').request(`/api/v1/projects/pub/keys/${stored.id}`, { method: 'DELETE' })).status, 204);
  sigs = await list();
  t.deepEqual(
    sigs.map((s) => s.trusted),
    [false, false],
  );
});

test('a signature by a trusted key must verify to be stored', async (t) => {
  const repo = 'priv/tampered';
  const digest = await pushed(repo);
  const trusted = await makeKey({ name: 'Trusted' });
  await as('root').request('/api/v1/projects/priv/keys', { method: 'POST', body: new Uint8Array(trusted.publicBinary) });
  const bytes = Buffer.from(await sign(trusted, payload(digest, `${registry.host}/${repo}:v1`)));
  const at = bytes.indexOf(Buffer.from('signet test'));
  bytes[at] = 'S'.charCodeAt(0);
  const res = await putSig('dev', repo, digest, bytes);
  t.is(res.status, 400);
  t.is(await errorCode(res), 'SIGNATURE_INVALID');
});

test('with REGISTRY_SIGNATURES_EXTENSION=false there is no header and no extension endpoint', async (t) => {
  const plain = await startTestRegistry({ env: { REGISTRY_SIGNATURES_EXTENSION: 'false' } });
  t.teardown(() => plain.close());
  const ping = await fetch(`${plain.url}/v2/`);
  t.is(ping.headers.get('x-registry-supports-signatures'), null);
  const res = await fetch(`${plain.url}/extensions/v2/a/signatures/${sha256('x')}`);
  t.is(res.status, 404);
});

test('lookaside DELETE with If-Match removes that signature only: a retry leaves the next one; a moved PUT says where it went', async (t) => {
  const repo = 'pub/lookretry';
  const digest = await pushed(repo);
  const bytes = await Promise.all(['v1', 'v2', 'v3'].map((tag) => sign(key, payload(digest, `${registry.host}/${repo}:${tag}`))));
  for (const [i, signature] of bytes.entries()) {
    t.is((await as('maint').request(lookaside(repo, digest, i + 1), { method: 'PUT', body: new Uint8Array(signature) })).status, 201);
  }
  const first = await as().request(lookaside(repo, digest, 1));
  const etag = first.headers.get('etag')!;
  t.regex(etag, /^"sha256:[a-f0-9]{64}"$/);
  await first.body?.cancel();
  const del = () => as('maint').request(lookaside(repo, digest, 1), { method: 'DELETE', headers: { 'If-Match': etag } });
  t.is((await del()).status, 204);
  // The same DELETE again (a lost answer, a proxy's retry): signature-1 is the former signature-2 now.
  const retried = await del();
  t.is(retried.status, 412);
  t.is(((await retried.json()) as { errors: { code: string }[] }).errors[0]!.code, 'CONFLICT');
  t.is((await as().request(lookaside(repo, digest, 2))).status, 200);
  t.is((await as('maint').request(lookaside(repo, digest, 1), { method: 'DELETE', headers: { 'If-Match': 'W/"x"' } })).status, 412);
  // The removal is in the audit log, with who did it.
  const audit = await (await as('maint').request('/api/v1/projects/pub/audit')).text();
  t.regex(audit, /"action":"signature\.remove".*"actor":"maint"|"actor":"maint".*"action":"signature\.remove"/);
  // PUTs racing for the same number: an answer is an error only when nothing was stored, and a
  // 201's Location names the number its bytes are served under (a 409 hid a write before).
  const racing = await Promise.all(
    ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'].map((tag) => sign(key, payload(digest, `${registry.host}/${repo}:${tag}`))),
  );
  const answers = await Promise.all(
    racing.map((signature) => as('maint').request(lookaside(repo, digest, 3), { method: 'PUT', body: new Uint8Array(signature) })),
  );
  const served = async (n: number) => Buffer.from(await (await as().request(lookaside(repo, digest, n))).arrayBuffer());
  const stored: Buffer[] = [];
  for (let n = 1; ; n++) {
    const res = await as().request(lookaside(repo, digest, n));
    if (res.status === 404) break;
    stored.push(Buffer.from(await res.arrayBuffer()));
  }
  for (const [i, res] of answers.entries()) {
    const kept = stored.some((b) => b.equals(Buffer.from(racing[i]!)));
    if (res.status === 201) {
      const number = Number(/signature-(\d+)$/.exec(res.headers.get('location') ?? '')?.[1]);
      t.true((await served(number)).equals(Buffer.from(racing[i]!)), `Location ${res.headers.get('location')}`);
    } else {
      t.false(kept, `answered ${res.status} ${await res.text()}, yet stored`);
    }
  }
});
