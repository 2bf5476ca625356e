// The signed-only gate on multi-platform images, as a hostile project member attacks it: an index
// without a signature of its own passes only when every manifest it lists has a signature for the
// same pull, and none is to be fetched from elsewhere (`urls`, `data`). Before, one signed child
// was enough: an unsigned child beside it was run by clients that verify nothing (containerd
// fetched it from its `urls`, never asking the gate), and an old image signed for another tag,
// listed under this one, passed as it (adversarial testing).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, makeImage, OCI_INDEX, type Blob, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeKey, payload, sign, type TestKey } from '../helpers/signing.js';

const USERS = { root: 'root-pw', dev: 'dev-pw' };
let registry: TestRegistry;
let dir: string;
let trusted: TestKey;
const root = () => createClient(registry.url, { Authorization: basic('root', USERS.root) });
const dev = () => createClient(registry.url, { Authorization: basic('dev', USERS.dev) });

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-gate-index-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  trusted = await makeKey({ name: 'Trusted' });
});
test.after.always(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A signed-only project trusting `trusted`, dev a developer in it (pushes, holds no key). */
async function project(name: string): Promise<void> {
  await root().request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: false }) });
  await root().request(`/api/v1/projects/${name}/members/dev`, { method: 'PUT', body: JSON.stringify({ role: 'developer' }) });
  await root().request(`/api/v1/projects/${name}/keys`, { method: 'POST', body: new Uint8Array(trusted.publicBinary) });
  await root().request(`/api/v1/projects/${name}`, { method: 'PATCH', body: JSON.stringify({ signedOnly: true }) });
}

/** What the signer (holding the trusted key) stores: a simple signature of `digest` for `reference`. */
async function signAs(repo: string, digest: string, reference: string): Promise<void> {
  const res = await root().request(`/extensions/v2/${repo}/signatures/${digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${digest}@${Math.random().toString(16).slice(2).padEnd(32, '0').slice(0, 32)}`,
      type: 'atomic',
      content: Buffer.from(await sign(trusted, payload(digest, `${registry.host}/${reference}`))).toString('base64'),
    }),
  });
  if (res.status !== 201) throw new Error(`signature ${res.status}`);
}

async function push(repo: string, tag: string, image: Image): Promise<Image> {
  const res = await dev().pushImage(repo, image, tag);
  if (res.status !== 201) throw new Error(`push ${res.status}`);
  return image;
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
  const v0 = await push('ix1/app', 'v0', makeImage({ layers: 1 }));
  await signAs('ix1/app', v0.manifest.digest, 'ix1/app:v0');
  const v1 = await push('ix1/app', 'v1', makeImage({ layers: 1, architecture: 'arm64' }));
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
  const real = await push('ix2/app', 'v1', makeImage({ layers: 1, architecture: 'arm64' }));
  await signAs('ix2/app', real.manifest.digest, 'ix2/app:v1');
  const evil = await push('ix2/app', 'evil', makeImage({ layers: 1 }));
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
    const image = await push('ix3/app', `img${i}`, makeImage({ layers: 1 }));
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
