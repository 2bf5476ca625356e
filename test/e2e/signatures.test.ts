// The signature store with the real signing and verifying clients: gpg keys in temporary
// GNUPGHOMEs, `skopeo copy --sign-by` and `podman push --sign-by` storing simple signatures through
// the signature API extension, the lookaside read over HTTP (registries.d `lookaside:` and the
// older `sigstore:`, public and private projects), skopeo's staging folder uploaded with
// `signet signatures import`, and `signedBy` trust policies that accept the right key and reject
// another key and unsigned images. Garbage, clearsigned and detached signatures are refused, and
// armored ones stored in the binary form clients read, so nothing can break a signed pull.
import { randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { basic, createProject, writeHtpasswd } from '../helpers/auth.js';
import { createPodman, createSkopeo, podmanImport, type Podman, type Skopeo } from '../helpers/containers-tools.js';
import { testWithCommands } from '../helpers/env.js';
import { createGpgKey, writeSignedByPolicy, type GpgKey } from '../helpers/gpg.js';
import { readDirCopy } from '../helpers/layout-reader.js';
import { makeImage, makeIndex, sha256, writeOciLayout, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { randomFiles } from '../helpers/rootfs.js';
import { run, runExpectingFailure, type CommandError, type RunResult } from '../helpers/run.js';

interface Context {
  /** The signature API extension on (the default): clients store and read signatures through it. */
  ext: TestRegistry;
  /** REGISTRY_SIGNATURES_EXTENSION=false: clients read the lookaside configured in registries.d. */
  look: TestRegistry;
  signer: GpgKey;
  /** A key nobody trusts. */
  other: GpgKey;
  skopeo: Skopeo;
  podman: Podman;
  work: string;
}

// Hooks every client shares (registries, keys); the skopeo and podman tests skip on their own.
const GPG = ['gpg', 'gpgconf'];
const test = testWithCommands<Context>('signatures e2e', GPG);
const skopeoTest = testWithCommands<Context>('signatures e2e with skopeo', ['skopeo', ...GPG]);
const podmanTest = testWithCommands<Context>('signatures e2e with podman', ['podman', ...GPG], { root: true });
type T = ExecutionContext<Context>;

const USERS = { root: 'root-pw', dev: 'dev-pw', maint: 'maint-pw' };
type User = keyof typeof USERS;
const MAIN = path.resolve('server/main.ts');

// What skopeo and podman say when a trust policy refuses an image.
const NOT_SIGNED = /Source image rejected: A signature was required, but no signature exists/;
const WRONG_KEY = /Source image rejected: .*Invalid GPG signature/;

async function startSigningRegistry(dir: string, extension: boolean): Promise<TestRegistry> {
  const htpasswd = path.join(dir, `htpasswd-${extension ? 'ext' : 'look'}`);
  await writeHtpasswd(htpasswd, USERS);
  const registry = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
      REGISTRY_AUTH_ADMINS: 'root',
      REGISTRY_SIGNATURES_EXTENSION: String(extension),
    },
  });
  const members = { dev: 'developer', maint: 'maintainer' } as const;
  await createProject(registry.url, ['root', USERS.root], 'proj', { public: false, members });
  await createProject(registry.url, ['root', USERS.root], 'pub', { public: true, members });
  return registry;
}

test.before(async (t) => {
  t.context.work = await mkdtemp(path.join(os.tmpdir(), 'signet-e2e-sig-'));
  // Side by side; each is kept as soon as it is ready, so after.always closes it whatever fails.
  const settled = await Promise.allSettled([
    startSigningRegistry(t.context.work, true).then((r) => (t.context.ext = r)),
    startSigningRegistry(t.context.work, false).then((r) => (t.context.look = r)),
    createGpgKey('Signet Signer', 'signer@example.com').then((k) => (t.context.signer = k)),
    createGpgKey('Someone Else', 'other@example.com').then((k) => (t.context.other = k)),
  ]);
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
});
skopeoTest.before(async (t) => {
  t.context.skopeo = await createSkopeo();
});
podmanTest.before(async (t) => {
  t.context.podman = await createPodman();
});

test.after.always(async (t) => {
  await t.context.podman?.close();
  await t.context.skopeo?.close();
  await t.context.signer?.close();
  await t.context.other?.close();
  await t.context.ext?.close();
  await t.context.look?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

let dirs = 0;
async function workDir(t: T, label: string): Promise<string> {
  const dir = path.join(t.context.work, `${label}-${++dirs}`);
  await mkdir(dir);
  return dir;
}

const hex = (digest: string): string => digest.replace(/^sha256:/, '');
/** A binary OpenPGP message starts with a packet tag (bit 7 set); armor starts with `-----`. */
const isBinaryOpenpgp = (bytes: Buffer): boolean => bytes.length > 0 && (bytes[0]! & 0x80) !== 0;
const lookasidePath = (repository: string, digest: string, n: number): string =>
  `/sigstore/${repository}@sha256=${hex(digest)}/signature-${n}`;

function as(registry: TestRegistry, user: User | undefined, urlPath: string, init: RequestInit = {}): Promise<Response> {
  const headers: Record<string, string> = user ? { Authorization: basic(user, USERS[user]) } : {};
  return fetch(`${registry.url}${urlPath}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string> | undefined) } });
}

interface ExtensionSignature {
  schemaVersion: number;
  name: string;
  type: string;
  content: string;
}

async function extensionSignatures(t: T, repository: string, digest: string): Promise<ExtensionSignature[]> {
  const res = await as(t.context.ext, 'dev', `/extensions/v2/${repository}/signatures/${digest}`);
  t.is(res.status, 200);
  return ((await res.json()) as { signatures: ExtensionSignature[] }).signatures;
}

interface ListedSignature {
  signerFingerprint?: string;
  identity: string;
  trusted: boolean;
  uploadedBy?: string;
}

/** The management API's view: who signed, for which reference, trusted or not. */
async function listedSignatures(t: T, registry: TestRegistry, repository: string, digest: string): Promise<ListedSignature[]> {
  const [project, ...rest] = repository.split('/');
  const res = await as(registry, 'dev', `/api/v1/projects/${project}/repositories/${rest.join('/')}/signatures/${digest}`);
  t.is(res.status, 200);
  return ((await res.json()) as { signatures: ListedSignature[] }).signatures;
}

/** `signet …` (the management CLI, from source) as `user` against `registry`. */
function signet(registry: TestRegistry, user: User, args: string[]): Promise<RunResult> {
  return run(process.execPath, ['--import', 'tsx', MAIN, '--registry', registry.url, '--user', user, ...args], {
    env: { ...process.env, SIGNET_PASSWORD: USERS[user] },
  });
}
function signetFails(registry: TestRegistry, user: User, args: string[]): Promise<CommandError> {
  return runExpectingFailure(process.execPath, ['--import', 'tsx', MAIN, '--registry', registry.url, '--user', user, ...args], {
    env: { ...process.env, SIGNET_PASSWORD: USERS[user] },
  });
}

// --- skopeo helpers -----------------------------------------------------------------------------

interface PushOptions {
  /** Sign with this key (`--sign-by`). */
  signBy?: GpgKey;
  registriesD?: string;
}

/**
 * `skopeo copy` of a new random image from an OCI layout to `<registry>/<repository>:v1` as the
 * developer; returns the image (its manifest digest is what the registry stores).
 */
async function skopeoPush(t: T, registry: TestRegistry, repository: string, options: PushOptions = {}): Promise<Image> {
  const image = makeImage({ layers: 1 });
  const layout = await workDir(t, 'layout');
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  const digestFile = path.join(layout, 'pushed.digest');
  const sign = options.signBy ? ['--sign-by', options.signBy.fingerprint] : [];
  await t.context.skopeo.skopeo(
    [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `dev:${USERS.dev}`,
      '--digestfile',
      digestFile,
      ...sign,
      `oci:${layout}:v1`,
      `docker://${registry.host}/${repository}:v1`,
    ],
    {
      env: options.signBy ? options.signBy.env(t.context.skopeo.env) : t.context.skopeo.env,
      ...(options.registriesD ? { registriesD: options.registriesD } : {}),
    },
  );
  t.is((await readFile(digestFile, 'utf8')).trim(), image.manifest.digest);
  return image;
}

interface PullOptions {
  registriesD?: string;
  /** Send the developer's credentials to the registry (private projects). */
  creds?: boolean;
}

function pullArgs(source: string, out: string, options: PullOptions): string[] {
  return ['copy', '--src-tls-verify=false', ...(options.creds ? ['--src-creds', `dev:${USERS.dev}`] : []), source, `dir:${out}`];
}

/**
 * `skopeo copy --policy <policy> docker://… dir:…`, which must succeed: returns the copy (a `dir:`
 * destination keeps the manifest bytes and the signatures skopeo read, as signature-<N>).
 */
async function verifiedPull(t: T, source: string, policy: string, options: PullOptions = {}): Promise<string> {
  const out = await workDir(t, 'pulled');
  await t.context.skopeo.skopeo(pullArgs(source, out, options), {
    policy,
    ...(options.registriesD ? { registriesD: options.registriesD } : {}),
  });
  return out;
}

async function rejectedPull(t: T, source: string, policy: string, options: PullOptions = {}): Promise<CommandError> {
  const out = await workDir(t, 'rejected');
  return t.context.skopeo.skopeoFails(pullArgs(source, out, options), {
    policy,
    ...(options.registriesD ? { registriesD: options.registriesD } : {}),
  });
}

async function assertPulledImage(t: T, out: string, image: Image, signatures: number): Promise<void> {
  const copy = await readDirCopy(out);
  t.is(sha256(copy.manifest), image.manifest.digest, 'the verified pull copied another manifest');
  t.true(copy.blobs.has(image.config.digest));
  for (let n = 1; n <= signatures; n++) await access(path.join(out, `signature-${n}`));
  await t.throwsAsync(access(path.join(out, `signature-${signatures + 1}`)), undefined, `more than ${signatures} signature(s) were read`);
}

/** Policies trusting the signer's key, or the other key, for images under `scopes`. */
async function policies(t: T, scopes: string[]): Promise<{ signer: string; other: string }> {
  const dir = await workDir(t, 'policy');
  return {
    signer: await writeSignedByPolicy(path.join(dir, 'signer.json'), scopes, t.context.signer.publicKeyFile),
    other: await writeSignedByPolicy(path.join(dir, 'other.json'), scopes, t.context.other.publicKeyFile),
  };
}

/** A registries.d directory holding one yaml file. */
async function registriesD(t: T, yaml: string): Promise<string> {
  const dir = await workDir(t, 'registries.d');
  await writeFile(path.join(dir, 'signet.yaml'), yaml);
  return dir;
}

/** A simple signature of `image` for `reference`, made by skopeo standalone-sign with `key`. */
async function standaloneSign(t: T, key: GpgKey, image: Image, reference: string): Promise<Buffer> {
  const dir = await workDir(t, 'standalone');
  await writeFile(path.join(dir, 'manifest.json'), image.manifest.data);
  const output = path.join(dir, 'signature');
  await t.context.skopeo.skopeo(['standalone-sign', '--output', output, path.join(dir, 'manifest.json'), reference, key.fingerprint], {
    env: key.env(t.context.skopeo.env),
  });
  return readFile(output);
}

async function putLookaside(
  t: T,
  registry: TestRegistry,
  user: User,
  repository: string,
  digest: string,
  n: number,
  body: Uint8Array,
): Promise<Response> {
  return as(registry, user, lookasidePath(repository, digest, n), {
    method: 'PUT',
    body: new Uint8Array(body),
    headers: { 'Content-Type': 'application/octet-stream' },
  });
}

/** What one would upload instead of a real signature: the payload armored, clearsigned, detached. */
async function variantsOf(t: T, key: GpgKey, signature: Buffer): Promise<{ armored: Buffer; clearsigned: Buffer; detached: Buffer }> {
  const dir = await workDir(t, 'variants');
  const at = (name: string): string => path.join(dir, name);
  await writeFile(at('signature'), signature);
  await key.gpg(['--output', at('payload.json'), '--decrypt', at('signature')]);
  await key.gpg(['--armor', '--output', at('armored.asc'), '--sign', at('payload.json')]);
  await key.gpg(['--output', at('clearsigned.asc'), '--clearsign', at('payload.json')]);
  await key.gpg(['--output', at('detached.sig'), '--detach-sign', at('payload.json')]);
  return {
    armored: await readFile(at('armored.asc')),
    clearsigned: await readFile(at('clearsigned.asc')),
    detached: await readFile(at('detached.sig')),
  };
}

// --- 1. skopeo through the signature API extension ----------------------------------------------

skopeoTest(
  'skopeo --sign-by stores the signature through the extension; signedBy accepts it, not another key or an unsigned image',
  async (t) => {
    const { ext, signer } = t.context;
    const image = await skopeoPush(t, ext, 'proj/app', { signBy: signer });
    const digest = image.manifest.digest;

    const stored = await extensionSignatures(t, 'proj/app', digest);
    t.is(stored.length, 1, 'skopeo did not store its signature through the extension');
    t.like(stored[0], { schemaVersion: 2, type: 'atomic' });
    t.regex(stored[0]!.name, new RegExp(`^${digest}@[0-9a-f]{32}$`));
    t.true(isBinaryOpenpgp(Buffer.from(stored[0]!.content, 'base64')), 'not stored as the binary message skopeo wrote');

    const [listed] = await listedSignatures(t, ext, 'proj/app', digest);
    t.like(listed, { signerFingerprint: signer.fingerprint, identity: `${ext.host}/proj/app:v1`, trusted: false, uploadedBy: 'dev' });
    // Once the project trusts the key, the listing (API and CLI) says so.
    const added = await signet(ext, 'root', ['key', 'add', 'proj', signer.publicKeyFile]);
    t.regex(added.stdout, new RegExp(`trusted: key \\d+ ${signer.fingerprint}`));
    const cli = await signet(ext, 'dev', ['signatures', 'list', 'proj/app:v1']);
    t.regex(cli.stdout, new RegExp(`^1\\s+${signer.fingerprint}\\s+${ext.host}/proj/app:v1\\s+yes$`, 'm'), cli.stdout);

    const policy = await policies(t, [`${ext.host}/proj`]);
    const reference = `docker://${ext.host}/proj/app:v1`;
    await assertPulledImage(t, await verifiedPull(t, reference, policy.signer, { creds: true }), image, 1);
    // By digest the signature's identity must name the same repository (matchRepoDigestOrExact).
    await assertPulledImage(t, await verifiedPull(t, `docker://${ext.host}/proj/app@${digest}`, policy.signer, { creds: true }), image, 1);

    const wrongKey = await rejectedPull(t, reference, policy.other, { creds: true });
    t.regex(wrongKey.stderr, WRONG_KEY, wrongKey.message);

    await skopeoPush(t, ext, 'proj/unsigned');
    const unsigned = await rejectedPull(t, `docker://${ext.host}/proj/unsigned:v1`, policy.signer, { creds: true });
    t.regex(unsigned.stderr, NOT_SIGNED, unsigned.message);
  },
);

skopeoTest('skopeo copy --all --sign-by signs the index and every instance; a one-platform pull verifies its own', async (t) => {
  const { ext, signer } = t.context;
  const amd64 = makeImage({ layers: 1, architecture: 'amd64' });
  const arm64 = makeImage({ layers: 1, architecture: 'arm64' });
  const index = makeIndex([amd64, arm64]);
  const layout = await workDir(t, 'multi');
  await writeOciLayout(layout, [amd64, arm64], index, 'v1');
  const reference = `${ext.host}/proj/multi:v1`;
  await t.context.skopeo.skopeo(
    [
      'copy',
      '--all',
      '--dest-tls-verify=false',
      '--dest-creds',
      `dev:${USERS.dev}`,
      '--sign-by',
      signer.fingerprint,
      `oci:${layout}:v1`,
      `docker://${reference}`,
    ],
    { env: signer.env(t.context.skopeo.env) },
  );
  for (const [what, digest] of [
    ['index', index.digest],
    ['amd64', amd64.manifest.digest],
    ['arm64', arm64.manifest.digest],
  ] as const) {
    t.is((await extensionSignatures(t, 'proj/multi', digest)).length, 1, `${what} is not signed`);
    const [listed] = await listedSignatures(t, ext, 'proj/multi', digest);
    t.like(listed, { signerFingerprint: signer.fingerprint, identity: reference }, what);
  }
  // A client pulling one platform checks that platform's signature, under the tag it was given.
  const policy = await policies(t, [`${ext.host}/proj`]);
  const out = await workDir(t, 'pulled');
  await t.context.skopeo.skopeo(
    [
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `dev:${USERS.dev}`,
      '--override-os',
      'linux',
      '--override-arch',
      'arm64',
      `docker://${reference}`,
      `dir:${out}`,
    ],
    { policy: policy.signer },
  );
  await assertPulledImage(t, out, arm64, 1);
});

// --- 2. the lookaside over HTTP -----------------------------------------------------------------

skopeoTest('extension off: signedBy pulls read the lookaside named by registries.d lookaside: or sigstore:', async (t) => {
  const { look, signer, other } = t.context;
  const hello = await as(look, 'dev', '/v2/');
  t.is(hello.status, 200);
  t.is(hello.headers.get('x-registry-supports-signatures'), null, 'the extension is still advertised');

  const image = await skopeoPush(t, look, 'pub/app');
  const signature = await standaloneSign(t, signer, image, `${look.host}/pub/app:v1`);
  t.is(
    (await putLookaside(t, look, 'dev', 'pub/app', image.manifest.digest, 1, signature)).status,
    403,
    'developers may not upload signatures',
  );
  t.is((await putLookaside(t, look, 'maint', 'pub/app', image.manifest.digest, 1, signature)).status, 201);

  const policy = await policies(t, [`${look.host}/pub`]);
  const reference = `docker://${look.host}/pub/app:v1`;
  for (const key of ['lookaside', 'sigstore']) {
    const config = await registriesD(t, `docker:\n  ${look.host}:\n    ${key}: ${look.url}/sigstore\n`);
    const out = await verifiedPull(t, reference, policy.signer, { registriesD: config });
    await assertPulledImage(t, out, image, 1);
    t.deepEqual(await readFile(path.join(out, 'signature-1')), signature, `${key}: skopeo read other bytes than were uploaded`);
    const wrongKey = await rejectedPull(t, reference, policy.other, { registriesD: config });
    t.regex(wrongKey.stderr, WRONG_KEY, `${key}: ${wrongKey.message}`);
  }
  // Without a lookaside configured skopeo finds no signature at all.
  const unconfigured = await rejectedPull(t, reference, policy.signer);
  t.regex(unconfigured.stderr, NOT_SIGNED, unconfigured.message);

  // A signature by another key is stored beside it (trust is the reader's business): each
  // policy accepts the image for the signature by its own key.
  const byOther = await standaloneSign(t, other, image, `${look.host}/pub/app:v1`);
  t.is((await putLookaside(t, look, 'maint', 'pub/app', image.manifest.digest, 2, byOther)).status, 201);
  const listed = await listedSignatures(t, look, 'pub/app', image.manifest.digest);
  t.deepEqual(
    listed.map((s) => s.signerFingerprint),
    [signer.fingerprint, other.fingerprint],
  );
  const config = await registriesD(t, `docker:\n  ${look.host}:\n    lookaside: ${look.url}/sigstore\n`);
  await assertPulledImage(t, await verifiedPull(t, reference, policy.signer, { registriesD: config }), image, 2);
  await assertPulledImage(t, await verifiedPull(t, reference, policy.other, { registriesD: config }), image, 2);

  await skopeoPush(t, look, 'pub/unsigned');
  const unsigned = await rejectedPull(t, `docker://${look.host}/pub/unsigned:v1`, policy.signer, { registriesD: config });
  t.regex(unsigned.stderr, NOT_SIGNED, unsigned.message);
});

skopeoTest('extension off, private project: the lookaside answers 404 to anonymous readers and serves userinfo in the URL', async (t) => {
  const { look, signer } = t.context;
  const image = await skopeoPush(t, look, 'proj/app');
  const signature = await standaloneSign(t, signer, image, `${look.host}/proj/app:v1`);
  t.is((await putLookaside(t, look, 'maint', 'proj/app', image.manifest.digest, 1, signature)).status, 201);
  const policy = await policies(t, [`${look.host}/proj`]);
  const reference = `docker://${look.host}/proj/app:v1`;

  // skopeo sends no registry credentials to the lookaside: the private signature reads as absent.
  const anonymousLookaside = await registriesD(t, `docker:\n  ${look.host}:\n    lookaside: ${look.url}/sigstore\n`);
  const hidden = await rejectedPull(t, reference, policy.signer, { creds: true, registriesD: anonymousLookaside });
  t.regex(hidden.stderr, NOT_SIGNED, hidden.message);

  const withUserinfo = await registriesD(t, `docker:\n  ${look.host}:\n    lookaside: http://dev:${USERS.dev}@${look.host}/sigstore\n`);
  const out = await verifiedPull(t, reference, policy.signer, { creds: true, registriesD: withUserinfo });
  await assertPulledImage(t, out, image, 1);
  t.deepEqual(await readFile(path.join(out, 'signature-1')), signature);
});

// --- 3. podman ----------------------------------------------------------------------------------

podmanTest('podman push --sign-by stores the signature through the extension; podman pull with a signedBy policy', async (t) => {
  const { ext, podman, signer, work } = t.context;
  const tls = '--tls-verify=false';
  const creds = `dev:${USERS.dev}`;
  const imageId = await podmanImport(podman, randomFiles('signed', 1), work, 'signet-e2e/signed:v1');
  const signed = `${ext.host}/proj/podman-signed:v1`;
  const unsigned = `${ext.host}/proj/podman-unsigned:v1`;
  await podman.podman(['tag', imageId, signed]);
  await podman.podman(['tag', imageId, unsigned]);

  const digestFile = path.join(await workDir(t, 'podman'), 'digest');
  const pushed = await podman.podman(['push', tls, '--creds', creds, '--digestfile', digestFile, '--sign-by', signer.fingerprint, signed], {
    env: signer.env(podman.env),
  });
  t.regex(pushed.stderr, /Signing manifest using simple signing/);
  const digest = (await readFile(digestFile, 'utf8')).trim();
  t.is((await extensionSignatures(t, 'proj/podman-signed', digest)).length, 1, 'podman did not store its signature through the extension');
  const [listed] = await listedSignatures(t, ext, 'proj/podman-signed', digest);
  t.like(listed, { signerFingerprint: signer.fingerprint, identity: signed });
  await podman.podman(['push', tls, '--creds', creds, unsigned]);

  const policyDir = await workDir(t, 'policy');
  const policy = await writeSignedByPolicy(path.join(policyDir, 'signer.json'), [`${ext.host}/proj`], signer.publicKeyFile);
  const otherPolicy = await writeSignedByPolicy(path.join(policyDir, 'other.json'), [`${ext.host}/proj`], t.context.other.publicKeyFile);
  await podman.podman(['rmi', '--force', imageId]);
  const pull = (reference: string, policyFile: string) => [
    'pull',
    '--quiet',
    tls,
    '--creds',
    creds,
    '--signature-policy',
    policyFile,
    reference,
  ];

  const { stdout } = await podman.podman(pull(signed, policy));
  t.is(stdout.trim(), imageId);
  await podman.podman(['rmi', '--force', imageId]);
  const wrongKey = await podman.podmanFails(pull(signed, otherPolicy));
  t.regex(wrongKey.stderr, WRONG_KEY, wrongKey.message);
  const notSigned = await podman.podmanFails(pull(unsigned, policy));
  t.regex(notSigned.stderr, NOT_SIGNED, notSigned.message);
  await podman.podmanFails(['image', 'exists', imageId]);
});

// --- 4. skopeo's staging folder, uploaded with `signet signatures import` -----------------------

skopeoTest('lookaside-staging: skopeo writes signature-1 to a folder, signet signatures import uploads it, pulls verify', async (t) => {
  const { look, signer } = t.context;
  const stage = await workDir(t, 'staging');
  const staging = await registriesD(
    t,
    `docker:\n  ${look.host}:\n    lookaside: ${look.url}/sigstore\n    lookaside-staging: file://${stage}\n`,
  );
  const image = await skopeoPush(t, look, 'pub/staged/app', { signBy: signer, registriesD: staging });
  const digest = image.manifest.digest;
  const stagedFile = path.join(stage, `pub/staged/app@sha256=${hex(digest)}`, 'signature-1');
  const staged = await readFile(stagedFile);
  t.true(isBinaryOpenpgp(staged), 'skopeo staged something else than a binary signed message');

  const policy = await policies(t, [`${look.host}/pub`]);
  const reference = `docker://${look.host}/pub/staged/app:v1`;
  const notYet = await rejectedPull(t, reference, policy.signer, { registriesD: staging });
  t.regex(notYet.stderr, NOT_SIGNED, 'the staged signature is on the registry before the import');

  const denied = await signetFails(look, 'dev', ['signatures', 'import', stage]);
  t.regex(denied.stderr, /DENIED/, 'developers may not upload signatures');
  const imported = await signet(look, 'maint', ['signatures', 'import', stage]);
  t.regex(imported.stdout, /imported 1 signature\(s\), 0 already present/);
  const again = await signet(look, 'maint', ['signatures', 'import', stage]);
  t.regex(again.stdout, /imported 0 signature\(s\), 1 already present/);

  const served = await as(look, undefined, lookasidePath('pub/staged/app', digest, 1));
  t.is(served.status, 200);
  t.deepEqual(Buffer.from(await served.arrayBuffer()), staged);
  t.is((await as(look, undefined, lookasidePath('pub/staged/app', digest, 2))).status, 404);
  const [listed] = await listedSignatures(t, look, 'pub/staged/app', digest);
  t.like(listed, { signerFingerprint: signer.fingerprint, identity: `${look.host}/pub/staged/app:v1`, uploadedBy: 'maint' });

  await assertPulledImage(t, await verifiedPull(t, reference, policy.signer, { registriesD: staging }), image, 1);
  const wrongKey = await rejectedPull(t, reference, policy.other, { registriesD: staging });
  t.regex(wrongKey.stderr, WRONG_KEY, wrongKey.message);
});

// --- 5. nothing uploaded can poison a signed pull -----------------------------------------------

skopeoTest(
  'why garbage must be refused: one unparseable lookaside signature beside a valid one makes skopeo reject the image',
  async (t) => {
    const { look, signer } = t.context;
    const image = await skopeoPush(t, look, 'pub/poisoned');
    const signature = await standaloneSign(t, signer, image, `${look.host}/pub/poisoned:v1`);
    const { armored } = await variantsOf(t, signer, signature);
    const policy = await policies(t, [`${look.host}/pub`]);
    // A file: lookaside the test fills itself, as a registry storing whatever it is sent would serve.
    const folder = await workDir(t, 'file-lookaside');
    const signatures = path.join(folder, `pub/poisoned@sha256=${hex(image.manifest.digest)}`);
    await mkdir(signatures, { recursive: true });
    await writeFile(path.join(signatures, 'signature-1'), signature);
    const config = await registriesD(t, `docker:\n  ${look.host}:\n    lookaside: file://${folder}\n`);
    const reference = `docker://${look.host}/pub/poisoned:v1`;
    await verifiedPull(t, reference, policy.signer, { registriesD: config });
    for (const [what, bytes] of [
      ['garbage', Buffer.from('not a signature\n')],
      ['armored', armored],
    ] as const) {
      await writeFile(path.join(signatures, 'signature-2'), bytes);
      const rejected = await rejectedPull(t, reference, policy.signer, { registriesD: config });
      t.regex(
        rejected.stderr,
        /Source image rejected: parsing signature .*signature-2.*unrecognized signature format/,
        `${what}: ${rejected.message}`,
      );
    }
  },
);

skopeoTest('garbage, clearsigned and detached signatures are refused everywhere; armored ones are stored as binary', async (t) => {
  const { ext, look, signer } = t.context;
  // Through the extension.
  const extImage = await skopeoPush(t, ext, 'pub/guarded', { signBy: signer });
  const extDigest = extImage.manifest.digest;
  const [first] = await extensionSignatures(t, 'pub/guarded', extDigest);
  const variants = await variantsOf(t, signer, Buffer.from(first!.content, 'base64'));
  const putExtension = (content: Uint8Array) =>
    as(ext, 'dev', `/extensions/v2/pub/guarded/signatures/${extDigest}`, {
      method: 'PUT',
      body: JSON.stringify({
        schemaVersion: 2,
        name: `${extDigest}@${randomBytes(16).toString('hex')}`,
        type: 'atomic',
        content: Buffer.from(content).toString('base64'),
      }),
    });
  for (const [what, bytes] of [
    ['garbage', Buffer.from('not a signature')],
    ['clearsigned', variants.clearsigned],
    ['detached', variants.detached],
  ] as const) {
    const res = await putExtension(bytes);
    t.is(res.status, 400, `extension accepted a ${what} signature`);
    t.is(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code, 'SIGNATURE_INVALID');
  }
  t.is((await putExtension(variants.armored)).status, 201);
  const extStored = await extensionSignatures(t, 'pub/guarded', extDigest);
  t.is(extStored.length, 2);
  t.true(isBinaryOpenpgp(Buffer.from(extStored[1]!.content, 'base64')), 'the armored signature is served armored');
  // The lookaside of the extension registry serves the same (binary) bytes.
  const served = await as(ext, undefined, lookasidePath('pub/guarded', extDigest, 2));
  t.deepEqual(Buffer.from(await served.arrayBuffer()), Buffer.from(extStored[1]!.content, 'base64'));
  const extPolicy = await policies(t, [`${ext.host}/pub`]);
  await assertPulledImage(t, await verifiedPull(t, `docker://${ext.host}/pub/guarded:v1`, extPolicy.signer), extImage, 2);

  // Through the lookaside, where skopeo would reject the whole image for one bad signature.
  const image = await skopeoPush(t, look, 'pub/guarded');
  const digest = image.manifest.digest;
  const signature = await standaloneSign(t, signer, image, `${look.host}/pub/guarded:v1`);
  t.is((await putLookaside(t, look, 'maint', 'pub/guarded', digest, 1, signature)).status, 201);
  const { armored, clearsigned, detached } = await variantsOf(t, signer, signature);
  for (const [what, bytes] of [
    ['garbage', Buffer.from('not a signature')],
    ['clearsigned', clearsigned],
    ['detached', detached],
  ] as const) {
    const res = await putLookaside(t, look, 'maint', 'pub/guarded', digest, 2, bytes);
    t.is(res.status, 400, `lookaside accepted a ${what} signature`);
  }
  // A staging folder holding garbage: the import fails and stores nothing.
  const stage = await workDir(t, 'bad-staging');
  await mkdir(path.join(stage, `pub/guarded@sha256=${hex(digest)}`), { recursive: true });
  await writeFile(path.join(stage, `pub/guarded@sha256=${hex(digest)}`, 'signature-1'), 'not a signature');
  const refused = await signetFails(look, 'maint', ['signatures', 'import', stage]);
  t.regex(refused.stderr, /SIGNATURE_INVALID/, refused.message);
  t.is((await as(look, undefined, lookasidePath('pub/guarded', digest, 2))).status, 404, 'something was stored as signature-2');

  t.is((await putLookaside(t, look, 'maint', 'pub/guarded', digest, 2, armored)).status, 201);
  const second = await as(look, undefined, lookasidePath('pub/guarded', digest, 2));
  t.is(second.status, 200);
  t.true(isBinaryOpenpgp(Buffer.from(await second.arrayBuffer())), 'the armored upload is served armored');

  const policy = await policies(t, [`${look.host}/pub`]);
  const config = await registriesD(t, `docker:\n  ${look.host}:\n    lookaside: ${look.url}/sigstore\n`);
  await assertPulledImage(
    t,
    await verifiedPull(t, `docker://${look.host}/pub/guarded:v1`, policy.signer, { registriesD: config }),
    image,
    2,
  );
  const wrongKey = await rejectedPull(t, `docker://${look.host}/pub/guarded:v1`, policy.other, { registriesD: config });
  t.regex(wrongKey.stderr, WRONG_KEY, wrongKey.message);
});
