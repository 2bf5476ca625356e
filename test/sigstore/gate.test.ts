// The signed-only pull gate over real HTTP.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { cosignSign, makeCosignKey } from '../helpers/cosign.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, makeImage, makeIndex, OCI_INDEX, type Blob, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeKey, makeKeyWithSigningSubkey, payload, sign, type TestKey } from '../helpers/signing.js';

const USERS = { root: 'root-pw', dev: 'dev-pw' };
let registry: TestRegistry;
let dir: string;
let trusted: TestKey;
let stranger: TestKey;
const root = () => createClient(registry.url, { Authorization: basic('root', USERS.root) });
const dev = () => createClient(registry.url, { Authorization: basic('dev', USERS.dev) });

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-gate-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  [trusted, stranger] = await Promise.all([makeKey({ name: 'Trusted' }), makeKey({ name: 'Stranger' })]);
});
test.after.always(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A signed-only project trusting `trusted`, with dev as developer. */
async function project(name: string, options: { keys?: TestKey[]; signedOnly?: boolean } = {}): Promise<void> {
  await root().request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: false }) });
  await root().request(`/api/v1/projects/${name}/members/dev`, { method: 'PUT', body: JSON.stringify({ role: 'maintainer' }) });
  for (const key of options.keys ?? [trusted]) {
    await root().request(`/api/v1/projects/${name}/keys`, { method: 'POST', body: new Uint8Array(key.publicBinary) });
  }
  await root().request(`/api/v1/projects/${name}`, { method: 'PATCH', body: JSON.stringify({ signedOnly: options.signedOnly ?? true }) });
}

async function putSignature(repo: string, digest: string, bytes: Uint8Array): Promise<number> {
  const res = await dev().request(`/extensions/v2/${repo}/signatures/${digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${digest}@${Math.random().toString(16).slice(2).padEnd(32, '0').slice(0, 32)}`,
      type: 'atomic',
      content: Buffer.from(bytes).toString('base64'),
    }),
  });
  return res.status;
}

async function pushImage(repo: string, tag = 'v1', image: Image = makeImage({ layers: 1 })): Promise<Image> {
  const res = await dev().pushImage(repo, image, tag);
  if (res.status !== 201) throw new Error(`push ${res.status}`);
  return image;
}

async function policyError(res: Response): Promise<{ code?: string; message?: string }> {
  return ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0] ?? {};
}

test('unsigned images are refused with 412 PROJECTPOLICYVIOLATION, by tag, digest and HEAD', async (t) => {
  await project('g1');
  const image = await pushImage('g1/app');
  const res = await dev().getManifest('g1/app', 'v1');
  t.is(res.status, 412);
  const error = await policyError(res);
  t.is(error.code, 'PROJECTPOLICYVIOLATION');
  t.regex(error.message ?? '', /not signed/);
  t.is((await dev().getManifest('g1/app', image.manifest.digest)).status, 412);
  t.is((await dev().request('/v2/g1/app/manifests/v1', { method: 'HEAD' })).status, 412);
  // Blobs are never gated; pushes are unaffected.
  t.is((await dev().request(`/v2/g1/app/blobs/${image.layers[0]!.digest}`)).status, 200);
});

test('a signature by a trusted key opens the gate; removing the key closes it again', async (t) => {
  await project('g2');
  const image = await pushImage('g2/app');
  t.is(
    await putSignature('g2/app', image.manifest.digest, await sign(trusted, payload(image.manifest.digest, `${registry.host}/g2/app:v1`))),
    201,
  );
  t.is((await dev().getManifest('g2/app', 'v1')).status, 200);
  t.is((await dev().getManifest('g2/app', image.manifest.digest)).status, 200);

  const keys = ((await (await root().request('/api/v1/projects/g2/keys')).json()) as { keys: { id: number }[] }).keys;
  t.is((await root().request(`/api/v1/projects/g2/keys/${keys[0]!.id}`, { method: 'DELETE' })).status, 204);
  const closed = await dev().getManifest('g2/app', 'v1');
  t.is(closed.status, 412);
  t.regex((await policyError(closed)).message ?? '', /trusts no keys/);
});

test('a signature by an untrusted key does not open it, and the message names the key', async (t) => {
  await project('g3');
  const image = await pushImage('g3/app');
  await putSignature('g3/app', image.manifest.digest, await sign(stranger, payload(image.manifest.digest, `${registry.host}/g3/app:v1`)));
  const res = await dev().getManifest('g3/app', 'v1');
  t.is(res.status, 412);
  const message = (await policyError(res)).message ?? '';
  t.regex(message, /not trusted/);
  t.true(message.includes(stranger.publicKey.getKeyID().toHex().toUpperCase()));
});

test('a signature for another tag, repository or registry does not open it', async (t) => {
  await project('g4');
  const image = await pushImage('g4/app', 'v1');
  await dev().pushManifest('g4/app', 'v2', image.manifest);
  const digest = image.manifest.digest;
  await putSignature('g4/app', digest, await sign(trusted, payload(digest, `${registry.host}/g4/app:v2`)));
  await putSignature('g4/app', digest, await sign(trusted, payload(digest, `${registry.host}/g4/other:v1`)));
  await putSignature('g4/app', digest, await sign(trusted, payload(digest, `elsewhere.example.com/g4/app:v1`)));
  const byTag = await dev().getManifest('g4/app', 'v1');
  t.is(byTag.status, 412);
  const message = (await policyError(byTag)).message ?? '';
  t.regex(message, /signed for tag v2/);
  t.regex(message, /signed for repository g4\/other/);
  t.regex(message, /signed for registry elsewhere\.example\.com/);
  // The v2 signature matches a pull of v2, and (same repository) a pull by digest.
  t.is((await dev().getManifest('g4/app', 'v2')).status, 200);
  t.is((await dev().getManifest('g4/app', digest)).status, 200);
});

test('a signing subkey of a trusted primary key counts', async (t) => {
  const withSub = await makeKeyWithSigningSubkey();
  await project('g5', { keys: [withSub] });
  const image = await pushImage('g5/app');
  await putSignature(
    'g5/app',
    image.manifest.digest,
    await sign(withSub, payload(image.manifest.digest, `${registry.host}/g5/app:v1`), { subkey: true }),
  );
  t.is((await dev().getManifest('g5/app', 'v1')).status, 200);
});

test("multi-platform: the index passes on its own signature or every platform's; platform manifests by their own or a signed index", async (t) => {
  await project('g6');
  const a = await pushImage('g6/app', 'a');
  const b = await pushImage('g6/app', 'b', makeImage({ layers: 1, architecture: 'arm64' }));
  const index = makeIndex([a, b]);
  t.is((await dev().pushManifest('g6/app', 'multi', index)).status, 201);
  t.is((await dev().getManifest('g6/app', 'multi')).status, 412);

  // One platform signed under the tag is not enough: a client may pick the other.
  await putSignature('g6/app', a.manifest.digest, await sign(trusted, payload(a.manifest.digest, `${registry.host}/g6/app:multi`)));
  const half = await dev().getManifest('g6/app', 'multi');
  t.is(half.status, 412, 'index refused while one of its platforms is unsigned');
  t.true((await policyError(half)).message?.includes(b.manifest.digest), 'the message names the unsigned platform');
  t.is((await dev().getManifest('g6/app', a.manifest.digest)).status, 200);
  t.is((await dev().getManifest('g6/app', b.manifest.digest)).status, 412, 'b has no signature and no signed index');

  // Every platform signed under the tag: the index passes without a signature of its own.
  await putSignature('g6/app', b.manifest.digest, await sign(trusted, payload(b.manifest.digest, `${registry.host}/g6/app:multi`)));
  t.is((await dev().getManifest('g6/app', 'multi')).status, 200, 'index admitted through its signed platform manifests');
  t.is((await dev().getManifest('g6/app', index.digest)).status, 200);

  // As skopeo copy --all --sign-by: the list signed itself, which covers its platforms by digest.
  const c = await pushImage('g6/app', 'c', makeImage({ layers: 1, architecture: 's390x' }));
  const signedList = makeIndex([a, c]);
  t.is((await dev().pushManifest('g6/app', 'list', signedList)).status, 201);
  await putSignature('g6/app', signedList.digest, await sign(trusted, payload(signedList.digest, `${registry.host}/g6/app:list`)));
  t.is((await dev().getManifest('g6/app', 'list')).status, 200);
  t.is((await dev().getManifest('g6/app', c.manifest.digest)).status, 200, 'covered by the signed index that lists it');
});

test('a cosign signature (the .sig tag) opens the gate; signature artifacts are never gated', async (t) => {
  const key = makeCosignKey();
  await project('g7', { keys: [] });
  t.is((await root().request('/api/v1/projects/g7/keys', { method: 'POST', body: key.publicPem })).status, 201);
  const image = await pushImage('g7/app');
  t.is((await dev().getManifest('g7/app', 'v1')).status, 412);
  const sig = cosignSign(key, image.manifest.digest, `${registry.host}/g7/app:v1`);
  await dev().pushBlob('g7/app', sig.payload);
  await dev().pushBlob('g7/app', sig.config);
  t.is((await dev().pushManifest('g7/app', sig.tag, sig.manifest)).status, 201);
  t.is((await dev().getManifest('g7/app', sig.tag)).status, 200, 'the .sig tag itself is not gated');
  t.is((await dev().getManifest('g7/app', 'v1')).status, 200);

  // A cosign signature by another key does not.
  const other = makeCosignKey();
  const image2 = await pushImage('g7/app2');
  const forged = cosignSign(other, image2.manifest.digest, `${registry.host}/g7/app2:v1`);
  for (const b of [forged.payload, forged.config]) await dev().pushBlob('g7/app2', b);
  await dev().pushManifest('g7/app2', forged.tag, forged.manifest);
  const refused = await dev().getManifest('g7/app2', 'v1');
  t.is(refused.status, 412);
  t.regex((await policyError(refused)).message ?? '', /cosign/);
});

test('turning signed-only off serves unsigned images again', async (t) => {
  await project('g8');
  await pushImage('g8/app');
  t.is((await dev().getManifest('g8/app', 'v1')).status, 412);
  await root().request('/api/v1/projects/g8', { method: 'PATCH', body: JSON.stringify({ signedOnly: false }) });
  t.is((await dev().getManifest('g8/app', 'v1')).status, 200);
});

test('policy.json and registries.d export for a project', async (t) => {
  await project('g9');
  const res = await dev().request('/api/v1/projects/g9/policy.json');
  t.is(res.status, 200);
  const policy = (await res.json()) as {
    default: { type: string }[];
    transports: { docker: Record<string, { type: string; keyType: string; keyData: string }[]> };
  };
  t.deepEqual(policy.default, [{ type: 'reject' }]);
  const requirement = policy.transports.docker[`${registry.host}/g9`]![0]!;
  t.is(requirement.type, 'signedBy');
  t.is(requirement.keyType, 'GPGKeys');
  t.deepEqual(Buffer.from(requirement.keyData, 'base64'), Buffer.from(trusted.publicBinary));
  const yaml = await (await dev().request('/api/v1/projects/g9/registries.d.yaml')).text();
  t.true(yaml.includes(`  ${registry.host}:\n    lookaside: http://${registry.host}/sigstore`));
});

// Multi-platform images as a hostile project member attacks them: an index without a signature of
// its own passes only when every manifest it lists has a signature for the same pull, and none is
// to be fetched from elsewhere (`urls`, `data`). Before, one signed child was enough: an unsigned
// child beside it was run by clients that verify nothing (containerd fetched it from its `urls`,
// never asking the gate), and an old image signed for another tag, listed under this one, passed
// as it (adversarial testing).

/** What the signer (holding the trusted key) stores: a simple signature of `digest` for `reference`. */
async function signAs(repo: string, digest: string, reference: string): Promise<void> {
  const status = await putSignature(repo, digest, await sign(trusted, payload(digest, `${registry.host}/${reference}`)));
  if (status !== 201) throw new Error(`signature ${status}`);
}

/** An index the developer writes: the images listed, each descriptor with `extra` fields. */
function index(entries: { image: Image; extra?: Record<string, unknown> }[]): Blob {
  const body = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: entries.map(({ image, extra }) => ({
      mediaType: image.manifest.mediaType,
      digest: image.manifest.digest,
      size: image.manifest.size,
      platform: image.platform,
      ...extra,
    })),
  };
  return blobOf(Buffer.from(JSON.stringify(body)), OCI_INDEX);
}

test('an old image signed for another tag, listed beside the signed one, does not pass under this tag', async (t) => {
  await project('ix1');
  const v0 = await pushImage('ix1/app', 'v0', makeImage({ layers: 1 }));
  await signAs('ix1/app', v0.manifest.digest, 'ix1/app:v0');
  const v1 = await pushImage('ix1/app', 'v1', makeImage({ layers: 1, architecture: 'arm64' }));
  await signAs('ix1/app', v1.manifest.digest, 'ix1/app:v1');
  t.is((await dev().getManifest('ix1/app', 'v1')).status, 200);

  // The developer moves v1 to an unsigned index: v0 as amd64, the real v1 as arm64.
  const rollback = index([{ image: v0 }, { image: v1 }]);
  t.is((await dev().pushManifest('ix1/app', 'v1', rollback)).status, 201);
  const refused = await dev().getManifest('ix1/app', 'v1');
  t.is(refused.status, 412);
  t.regex(((await refused.json()) as { errors: { message: string }[] }).errors[0]!.message, new RegExp(v0.manifest.digest));
  t.is((await dev().request('/v2/ix1/app/manifests/v1', { method: 'HEAD' })).status, 412);
});

test('an unsigned child beside a signed one is refused, by tag and by digest, urls or data or neither', async (t) => {
  await project('ix2');
  const real = await pushImage('ix2/app', 'v1', makeImage({ layers: 1, architecture: 'arm64' }));
  await signAs('ix2/app', real.manifest.digest, 'ix2/app:v1');
  const evil = await pushImage('ix2/app', 'evil', makeImage({ layers: 1 }));
  for (const extra of [
    undefined,
    { urls: [`${registry.url}/v2/ix2/app/blobs/${evil.manifest.digest}`] },
    { data: evil.manifest.data.toString('base64') },
  ]) {
    const mixed = index([{ image: evil, ...(extra ? { extra } : {}) }, { image: real }]);
    t.is((await dev().pushManifest('ix2/app', 'v1', mixed)).status, 201);
    t.is((await dev().getManifest('ix2/app', 'v1')).status, 412, `by tag, ${JSON.stringify(Object.keys(extra ?? {}))}`);
    t.is((await dev().getManifest('ix2/app', mixed.digest)).status, 412, `by digest, ${JSON.stringify(Object.keys(extra ?? {}))}`);
  }
  // Even with every child signed, one to be fetched from elsewhere earns nothing through its children.
  await signAs('ix2/app', evil.manifest.digest, 'ix2/app:v1');
  const elsewhere = index([{ image: evil, extra: { urls: ['https://cdn.example.com/evil'] } }, { image: real }]);
  t.is((await dev().pushManifest('ix2/app', 'v1', elsewhere)).status, 201);
  t.is((await dev().getManifest('ix2/app', 'v1')).status, 412);
  // The same children without urls: both signed for v1, so the index passes.
  t.is((await dev().pushManifest('ix2/app', 'v1', index([{ image: evil }, { image: real }]))).status, 201);
  t.is((await dev().getManifest('ix2/app', 'v1')).status, 200);
});

test('property: an unsigned index passes exactly when every child is signed for the pull and none is fetched elsewhere', async (t) => {
  await project('ix3');
  // The signer's images: signed for tag t, signed for tag other, unsigned (the developer's), signed for t.
  const states = ['t', 'other', 'none', 't'] as const;
  const images: Image[] = [];
  for (const [i, state] of states.entries()) {
    const image = await pushImage('ix3/app', `img${i}`, makeImage({ layers: 1 }));
    if (state !== 'none') await signAs('ix3/app', image.manifest.digest, `ix3/app:${state}`);
    images.push(image);
  }
  let round = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ i: fc.integer({ min: 0, max: states.length - 1 }), urls: fc.boolean() }), { minLength: 0, maxLength: 5 }),
      async (children) => {
        round += 1;
        const body = index(
          children.map(({ i, urls }) => ({
            image: images[i]!,
            ...(urls ? { extra: { urls: [`https://cdn.example.com/${round}`] } } : {}),
          })),
        );
        const pushed = await dev().pushManifest('ix3/app', 't', body);
        if (pushed.status !== 201) return true; // an index the registry refuses is never served either
        const fetchedHere = children.length > 0 && children.every((c) => !c.urls);
        const byTag = fetchedHere && children.every((c) => states[c.i] === 't');
        const byDigest = fetchedHere && children.every((c) => states[c.i] !== 'none');
        const tagStatus = (await dev().getManifest('ix3/app', 't')).status;
        const digestStatus = (await dev().getManifest('ix3/app', body.digest)).status;
        return tagStatus === (byTag ? 200 : 412) && digestStatus === (byDigest ? 200 : 412);
      },
    ),
    { numRuns: 40 },
  );
  t.pass();
});
