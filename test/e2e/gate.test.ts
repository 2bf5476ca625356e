// The signed-only pull gate with the real clients: skopeo pushes (signing with gpg through
// --sign-by) and pulls with a policy that accepts anything (as --insecure-policy would), so only the
// registry's gate stands between an unsigned image and the client; and the exported policy.json
// used as skopeo's --policy.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import anyTest, { type ExecutionContext } from 'ava';
import { basic, createProject, writeHtpasswd } from '../helpers/auth.js';
import { createSkopeo, type Skopeo } from '../helpers/containers-tools.js';
import { cosignSign, makeCosignKey } from '../helpers/cosign.js';
import { testWithCommands } from '../helpers/env.js';
import { createGpgKey, type GpgKey } from '../helpers/gpg.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage, makeIndex, writeOciLayout, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

interface Context {
  work: string;
  registry: TestRegistry;
  skopeo: Skopeo;
  signer: GpgKey;
  other: GpgKey;
}
void anyTest;
const test = testWithCommands<Context>('signed-only gate e2e', ['skopeo', 'gpg', 'gpgconf']);
type T = ExecutionContext<Context>;
const USERS = { root: 'root-pw', dev: 'dev-pw' };
// skopeo prints the registry's message (it does not know Harbor's code, so it says "unknown").
const REFUSED = /is not signed|not trusted|no trusted signature matches|trusts no keys/;

test.before(async (t) => {
  t.context.work = await mkdtemp(path.join(os.tmpdir(), 'signet-e2e-gate-'));
  await writeHtpasswd(path.join(t.context.work, 'htpasswd'), USERS);
  const [registry, signer, other, skopeo] = await Promise.all([
    startTestRegistry({
      env: {
        REGISTRY_AUTH: 'htpasswd',
        REGISTRY_AUTH_HTPASSWD_PATH: path.join(t.context.work, 'htpasswd'),
        REGISTRY_AUTH_ADMINS: 'root',
      },
    }),
    createGpgKey('Gate Signer', 'gate@example.com'),
    createGpgKey('Not Trusted', 'other@example.com'),
    createSkopeo(),
  ]);
  Object.assign(t.context, { registry, signer, other, skopeo });
  for (const [name, signedOnly] of [
    ['sec', true],
    ['open', false],
  ] as const) {
    await createProject(registry.url, ['root', USERS.root], name, { public: false, members: { dev: 'maintainer' } });
    await root(t).request(`/api/v1/projects/${name}/keys`, { method: 'POST', body: new Uint8Array(await readKey(signer)) });
    await root(t).request(`/api/v1/projects/${name}`, { method: 'PATCH', body: JSON.stringify({ signedOnly }) });
  }
});
test.after.always(async (t) => {
  await t.context.skopeo?.close();
  await t.context.signer?.close();
  await t.context.other?.close();
  await t.context.registry?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

const root = (t: T) => createClient(t.context.registry.url, { Authorization: basic('root', USERS.root) });
async function readKey(key: GpgKey): Promise<Uint8Array> {
  const { readFile } = await import('node:fs/promises');
  return new Uint8Array(await readFile(key.publicKeyFile));
}

let dirs = 0;
async function workDir(t: T, label: string): Promise<string> {
  const dir = path.join(t.context.work, `${label}-${++dirs}`);
  await mkdir(dir);
  return dir;
}

/** skopeo copy of a fresh image (or index) into the registry, signed by `signBy` when given. */
async function push(t: T, reference: string, options: { signBy?: GpgKey; images?: Image[] } = {}): Promise<Image[]> {
  const images = options.images ?? [makeImage({ layers: 1 })];
  const layout = await workDir(t, 'layout');
  const top = images.length > 1 ? makeIndex(images) : images[0]!.manifest;
  await writeOciLayout(layout, images, top, 'v1');
  const sign = options.signBy ? ['--sign-by', options.signBy.fingerprint] : [];
  await t.context.skopeo.skopeo(
    [
      'copy',
      ...(images.length > 1 ? ['--all'] : []),
      '--dest-tls-verify=false',
      '--dest-creds',
      `dev:${USERS.dev}`,
      ...sign,
      `oci:${layout}:v1`,
      `docker://${t.context.registry.host}/${reference}`,
    ],
    { env: options.signBy ? options.signBy.env(t.context.skopeo.env) : t.context.skopeo.env },
  );
  return images;
}

/** skopeo copy out of the registry with the sandbox's accept-anything policy: only the gate decides. */
function pull(t: T, reference: string, extra: string[] = [], policy?: string) {
  return workDir(t, 'out').then((out) => ({
    args: [
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `dev:${USERS.dev}`,
      ...extra,
      `docker://${t.context.registry.host}/${reference}`,
      `dir:${out}`,
    ],
    policy,
  }));
}
async function pulls(t: T, reference: string, extra: string[] = [], policy?: string): Promise<void> {
  const { args } = await pull(t, reference, extra);
  await t.context.skopeo.skopeo(args, policy ? { policy } : {});
}
async function refused(t: T, reference: string, extra: string[] = [], policy?: string): Promise<string> {
  const { args } = await pull(t, reference, extra);
  const err = await t.context.skopeo.skopeoFails(args, policy ? { policy } : {});
  return err.stderr;
}

test.serial("an unsigned image cannot be pulled, even by a client that checks nothing; the 412 reason is in skopeo's error", async (t) => {
  await push(t, 'sec/unsigned:v1');
  const stderr = await refused(t, 'sec/unsigned:v1');
  t.regex(stderr, REFUSED);
  t.regex(stderr, /not signed/);
});

test.serial('signed by a trusted key (skopeo --sign-by) it can; by an untrusted key it cannot', async (t) => {
  await push(t, 'sec/app:v1', { signBy: t.context.signer });
  await t.notThrowsAsync(pulls(t, 'sec/app:v1'));
  await push(t, 'sec/foreign:v1', { signBy: t.context.other });
  const stderr = await refused(t, 'sec/foreign:v1');
  t.regex(stderr, /not trusted/);
});

test.serial('a signature made for another repository or tag does not open it', async (t) => {
  const [image] = await push(t, 'sec/tagged:a', { signBy: t.context.signer });
  // The same manifest under another tag: its signature names tag a.
  await t.context.skopeo.skopeo([
    'copy',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    '--src-creds',
    `dev:${USERS.dev}`,
    '--dest-creds',
    `dev:${USERS.dev}`,
    `docker://${t.context.registry.host}/sec/tagged@${image!.manifest.digest}`,
    `docker://${t.context.registry.host}/sec/tagged:b`,
  ]);
  await t.notThrowsAsync(pulls(t, 'sec/tagged:a'));
  t.regex(await refused(t, 'sec/tagged:b'), /signed for tag a/);
  // Copied into another repository with its signature: signed for sec/tagged, refused in sec/copy.
  await t.context.skopeo.skopeo([
    'copy',
    '--src-tls-verify=false',
    '--dest-tls-verify=false',
    '--src-creds',
    `dev:${USERS.dev}`,
    '--dest-creds',
    `dev:${USERS.dev}`,
    `docker://${t.context.registry.host}/sec/tagged:a`,
    `docker://${t.context.registry.host}/sec/copy:a`,
  ]);
  t.regex(await refused(t, 'sec/copy:a'), /signed for repository sec\/tagged/);
});

test.serial('a multi-platform image signed with skopeo copy --all --sign-by is pulled per platform', async (t) => {
  const images = [makeImage({ layers: 1 }), makeImage({ layers: 1, architecture: 'arm64' })];
  await push(t, 'sec/multi:v1', { signBy: t.context.signer, images });
  await t.notThrowsAsync(pulls(t, 'sec/multi:v1', ['--override-arch', 'arm64']));
  await t.notThrowsAsync(pulls(t, 'sec/multi:v1', ['--override-arch', 'amd64']));
  await t.notThrowsAsync(pulls(t, 'sec/multi:v1', ['--multi-arch', 'all']));
});

test.serial("a cosign signature (built with node crypto in cosign's format) opens the gate", async (t) => {
  const key = makeCosignKey();
  t.is((await root(t).request('/api/v1/projects/sec/keys', { method: 'POST', body: key.publicPem })).status, 201);
  const [image] = await push(t, 'sec/cosigned:v1');
  t.regex(await refused(t, 'sec/cosigned:v1'), REFUSED);
  const sig = cosignSign(key, image!.manifest.digest, `${t.context.registry.host}/sec/cosigned:v1`);
  const dev = createClient(t.context.registry.url, { Authorization: basic('dev', USERS.dev) });
  for (const blob of [sig.payload, sig.config]) await dev.pushBlob('sec/cosigned', blob);
  t.is((await dev.pushManifest('sec/cosigned', sig.tag, sig.manifest)).status, 201);
  await t.notThrowsAsync(pulls(t, 'sec/cosigned:v1'));
});

test.serial('the exported policy.json, as skopeo --policy, accepts the signed image and refuses the unsigned one', async (t) => {
  // In a project without the gate, so that only the client's policy decides.
  await push(t, 'open/signed:v1', { signBy: t.context.signer });
  await push(t, 'open/unsigned:v1');
  const exported = await (
    await createClient(t.context.registry.url, { Authorization: basic('dev', USERS.dev) }).request('/api/v1/projects/open/policy.json')
  ).text();
  const policy = path.join(await workDir(t, 'policy'), 'policy.json');
  await writeFile(policy, exported);
  await t.notThrowsAsync(pulls(t, 'open/signed:v1', [], policy));
  t.regex(await refused(t, 'open/unsigned:v1', [], policy), /Source image rejected/);
});

test.serial('after the key is removed, the signed image cannot be pulled again', async (t) => {
  const keys = ((await (await root(t).request('/api/v1/projects/sec/keys')).json()) as { keys: { id: number; kind: string }[] }).keys;
  for (const key of keys.filter((k) => k.kind === 'openpgp')) {
    t.is((await root(t).request(`/api/v1/projects/sec/keys/${key.id}`, { method: 'DELETE' })).status, 204);
  }
  t.regex(await refused(t, 'sec/app:v1'), REFUSED);
});
