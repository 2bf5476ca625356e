// The signed-only gate's hardening with the real clients (issue 14): gpg keys made and used at
// faked times (gpg.conf faked-system-time, which gpgme, and so skopeo --sign-by, obeys), skopeo
// judging with the exported policy where it can, podman and skopeo pulling what a hostile developer
// pushed, and skopeo fetching cosign signatures through the gate (use-sigstore-attachments).
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { basic, createProject, writeHtpasswd } from '../helpers/auth.js';
import { createPodman, createSkopeo, type Podman, type Skopeo } from '../helpers/containers-tools.js';
import { makeCosignKey } from '../helpers/cosign.js';
import { testWithCommands } from '../helpers/env.js';
import { createGpgKey, type GpgKey } from '../helpers/gpg.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage, writeOciLayout, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { COSIGN_SIMPLESIGNING, cosignSignatureManifest, descriptorOf, manifestOf } from '../helpers/signature-artifacts.js';

interface Context {
  work: string;
  registry: TestRegistry;
  skopeo: Skopeo;
  podman: Podman;
  keys: GpgKey[];
}
const test = testWithCommands<Context>('signed-only gate hardening e2e', ['skopeo', 'podman', 'gpg', 'gpgconf'], { root: true });
type T = ExecutionContext<Context>;
const USERS = { root: 'root-pw', dev: 'dev-pw' };
const DAY = 86400;

test.before(async (t) => {
  t.context.work = await mkdtemp(path.join(os.tmpdir(), 'signet-e2e-gate2-'));
  t.context.keys = [];
  await writeHtpasswd(path.join(t.context.work, 'htpasswd'), USERS);
  const [registry, skopeo, podman] = await Promise.all([
    startTestRegistry({
      env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(t.context.work, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
    }),
    createSkopeo(),
    createPodman(),
  ]);
  Object.assign(t.context, { registry, skopeo, podman });
});
test.after.always(async (t) => {
  for (const key of t.context.keys ?? []) await key.close();
  await t.context.skopeo?.close();
  await t.context.podman?.close();
  await t.context.registry?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

const root = (t: T) => createClient(t.context.registry.url, { Authorization: basic('root', USERS.root) });
const dev = (t: T) => createClient(t.context.registry.url, { Authorization: basic('dev', USERS.dev) });
const now = (): number => Math.floor(Date.now() / 1000);
let dirs = 0;
async function workDir(t: T, label: string): Promise<string> {
  const dir = path.join(t.context.work, `${label}-${++dirs}`);
  await mkdir(dir);
  return dir;
}

async function key(t: T, name: string, options: Parameters<typeof createGpgKey>[2]): Promise<GpgKey> {
  const made = await createGpgKey(name, `${name.toLowerCase().replace(/\W/g, '')}@example.com`, options);
  t.context.keys.push(made);
  return made;
}

async function project(t: T, name: string, options: { keys?: GpgKey[]; signedOnly: boolean }): Promise<void> {
  await createProject(t.context.registry.url, ['root', USERS.root], name, { public: false, members: { dev: 'developer' } });
  for (const k of options.keys ?? []) await trust(t, name, k);
  await signedOnly(t, name, options.signedOnly);
}
async function trust(t: T, project: string, k: GpgKey): Promise<Response> {
  return root(t).request(`/api/v1/projects/${project}/keys`, { method: 'POST', body: new Uint8Array(await readFile(k.publicKeyFile)) });
}
async function signedOnly(t: T, project: string, on: boolean): Promise<void> {
  await root(t).request(`/api/v1/projects/${project}`, { method: 'PATCH', body: JSON.stringify({ signedOnly: on }) });
}

/** skopeo copy of a fresh image into the registry as dev, signed by `signBy` through gpgme. */
async function push(t: T, reference: string, signBy?: GpgKey): Promise<Image> {
  const image = makeImage({ layers: 1 });
  const layout = await workDir(t, 'layout');
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  await t.context.skopeo.skopeo(
    [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `dev:${USERS.dev}`,
      ...(signBy ? ['--sign-by', signBy.fingerprint] : []),
      `oci:${layout}:v1`,
      `docker://${t.context.registry.host}/${reference}`,
    ],
    { env: signBy ? signBy.env(t.context.skopeo.env) : t.context.skopeo.env },
  );
  return image;
}

/** skopeo copy out as dev; the sandbox policy accepts anything, so only the gate decides, unless `policy` is given. */
async function pullArgs(t: T, reference: string): Promise<string[]> {
  const out = await workDir(t, 'out');
  return [
    'copy',
    '--src-tls-verify=false',
    '--src-creds',
    `dev:${USERS.dev}`,
    `docker://${t.context.registry.host}/${reference}`,
    `dir:${out}`,
  ];
}
type PullOptions = { policy?: string; registriesD?: string };
async function pulls(t: T, reference: string, options: PullOptions = {}): Promise<void> {
  await t.context.skopeo.skopeo(await pullArgs(t, reference), options);
}
async function refused(t: T, reference: string, options: PullOptions = {}): Promise<string> {
  return (await t.context.skopeo.skopeoFails(await pullArgs(t, reference), options)).stderr;
}
async function exportedPolicy(t: T, project: string): Promise<string> {
  const file = path.join(await workDir(t, 'policy'), 'policy.json');
  await writeFile(file, await (await dev(t).request(`/api/v1/projects/${project}/policy.json`)).text());
  return file;
}

test.serial('a primary key that expired after it signed: the gate refuses, and so does skopeo with the exported policy', async (t) => {
  const created = now() - 3 * DAY;
  const old = await key(t, 'Expired Primary', { createdAt: created, expires: '1d' });
  await project(t, 'expp', { signedOnly: false });
  await old.fakeTime(created + 3600); // signed while the key was valid
  await push(t, 'expp/app:v1', old);
  await old.fakeTime(undefined);
  t.is((await trust(t, 'expp', old)).status, 201);
  // skopeo (gpgme) judges the key now, as the gate does: KEY_EXPIRED.
  t.regex(await refused(t, 'expp/app:v1', { policy: await exportedPolicy(t, 'expp') }), /Source image rejected|expired/i);
  await signedOnly(t, 'expp', true);
  t.regex(await refused(t, 'expp/app:v1'), new RegExp(`key ${old.fingerprint} expired on`));
});

test.serial('a signing subkey that expired after it signed no longer opens the gate', async (t) => {
  const created = now() - 3 * DAY;
  const old = await key(t, 'Expired Subkey', { createdAt: created, signingSubkey: '1d' });
  await project(t, 'exps', { signedOnly: false });
  await old.fakeTime(created + 3600);
  await push(t, 'exps/app:v1', old);
  await old.fakeTime(undefined);
  t.is((await trust(t, 'exps', old)).status, 201);
  await signedOnly(t, 'exps', true);
  t.regex(await refused(t, 'exps/app:v1'), /signing subkey [0-9A-F]{16} of key [0-9A-F]{40} expired on/);
});

test.serial('revoking the signing subkey and uploading the key again closes the gate at once', async (t) => {
  const signer = await key(t, 'Revoked Subkey', { signingSubkey: 'never' });
  await project(t, 'revk', { keys: [signer], signedOnly: true });
  await push(t, 'revk/app:v1', signer);
  await t.notThrowsAsync(pulls(t, 'revk/app:v1'));
  await signer.revokeSigningSubkey();
  const update = await trust(t, 'revk', signer);
  t.is(update.status, 200);
  t.is(((await update.json()) as { outcome: string }).outcome, 'updated');
  t.regex(await refused(t, 'revk/app:v1'), /signing subkey [0-9A-F]{16} of key [0-9A-F]{40} has been revoked/);
});

test.serial('a signer whose clock runs 20 s ahead can push with skopeo copy --sign-by, and the image is served', async (t) => {
  const signer = await key(t, 'Fast Clock', {});
  await project(t, 'skew', { keys: [signer], signedOnly: true });
  await signer.fakeTime(now() + 20);
  await push(t, 'skew/app:v1', signer);
  await signer.fakeTime(undefined);
  await t.notThrowsAsync(pulls(t, 'skew/app:v1'));
});

test.serial('what a hostile developer labels as a signature is refused to skopeo and podman', async (t) => {
  await project(t, 'lbl', { signedOnly: true });
  const image = makeImage({ layers: 1 });
  for (const blob of [image.config, ...image.layers]) await dev(t).pushBlob('lbl/app', blob);
  const relabelled = manifestOf({
    artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
    config: descriptorOf(image.config),
    layers: image.layers.map((l) => ({
      ...descriptorOf(l),
      mediaType: COSIGN_SIMPLESIGNING,
      annotations: { 'dev.cosignproject.cosign/signature': 'MEUC' },
    })),
  });
  const tag = `${image.manifest.digest.replace(':', '-')}.sig`;
  // The developer may not push it (its "signatures" verify with no trusted key); pushed by the
  // registry admin, the gate still refuses it.
  const denied = await dev(t).pushManifest('lbl/app', tag, relabelled);
  t.is(denied.status, 403);
  t.regex(await denied.text(), /only maintainers may push cosign signatures/);
  t.is((await root(t).pushManifest('lbl/app', tag, relabelled)).status, 201);
  t.regex(await refused(t, `lbl/app:${tag}`), /is not signed/);
  const podman = await t.context.podman.podmanFails([
    'pull',
    '--tls-verify=false',
    '--creds',
    `dev:${USERS.dev}`,
    '--signature-policy',
    path.join(t.context.podman.dir, 'policy.json'),
    `${t.context.registry.host}/lbl/app@${relabelled.digest}`,
  ]);
  t.regex(podman.stderr, /is not signed/);
});

test.serial(
  'a client fetching cosign signatures gets the .sig manifest and payload through the gate; the image passes by tag (matchRepository)',
  async (t) => {
    // Debian's skopeo and podman are built with sigstore verification disabled ("Debian-local change:
    // sigstore disabled"), so they cannot judge cosign signatures here; they can fetch them, as
    // `use-sigstore-attachments` readers and cosign itself do, and the gate must let them.
    const cosign = makeCosignKey();
    await createProject(t.context.registry.url, ['root', USERS.root], 'cos', { public: false, members: { dev: 'developer' } });
    t.is((await root(t).request('/api/v1/projects/cos/keys', { method: 'POST', body: cosign.publicPem })).status, 201);
    await signedOnly(t, 'cos', true);
    const image = await push(t, 'cos/app:v1');
    t.regex(await refused(t, 'cos/app:v1'), /is not signed/);
    const sig = cosignSignatureManifest(cosign, image.manifest.digest, `${t.context.registry.host}/cos/app`);
    for (const blob of sig.blobs) await dev(t).pushBlob('cos/app', blob);
    t.is((await dev(t).pushManifest('cos/app', sig.tag, sig.manifest)).status, 201);

    const { stdout } = await t.context.skopeo.skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      '--creds',
      `dev:${USERS.dev}`,
      `docker://${t.context.registry.host}/cos/app:${sig.tag}`,
    ]);
    t.is(stdout.trim(), sig.manifest.data.toString());
    const out = await workDir(t, 'sig');
    await t.context.skopeo.skopeo([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `dev:${USERS.dev}`,
      `docker://${t.context.registry.host}/cos/app:${sig.tag}`,
      `dir:${out}`,
    ]);
    t.deepEqual(await readFile(path.join(out, sig.payload.digest.slice(7))), sig.payload.data);
    await t.notThrowsAsync(pulls(t, 'cos/app:v1'));
  },
);
