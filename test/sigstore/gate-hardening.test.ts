// The signed-only gate against what a hostile project developer tried (issue 14), over real HTTP:
// labels that opened it, ambiguous documents, keys expired or revoked since they signed, key
// updates, signers with fast clocks, signature lists past the clients' limits, case-folded
// identities, cosign's repository-only identities, and decompression bombs.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { makeCosignKey } from '../helpers/cosign.js';
import { createClient } from '../helpers/oci-client.js';
import { compressionBomb } from '../helpers/openpgp-bomb.js';
import { blobOf, makeImage, makeIndex, type Blob, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import {
  COSIGN_SIMPLESIGNING,
  cosignSignatureManifest,
  descriptorOf,
  EMPTY_CONFIG,
  manifestOf,
  notationReferrer,
  sigstoreBundleReferrer,
} from '../helpers/signature-artifacts.js';
import { makeKey, makeKeyWithSigningSubkey, payload, revokeSigningSubkey, sign, type TestKey } from '../helpers/signing.js';

const USERS = { root: 'root-pw', dev: 'dev-pw', maint: 'maint-pw' };
type User = keyof typeof USERS;
let registry: TestRegistry;
let dir: string;
let trusted: TestKey;
const as = (user: User, base = registry.url) => createClient(base, { Authorization: basic(user, USERS[user]) });
const SIG_ANNOTATION = { 'dev.cosignproject.cosign/signature': 'MEUCIQDx' };

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-gate-hard-'));
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

/** A project with dev as developer and maint as maintainer, trusting `keys`, signed-only unless told. */
async function project(name: string, options: { keys?: (TestKey | string)[]; signedOnly?: boolean } = {}): Promise<void> {
  await as('root').request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name, public: false }) });
  for (const [user, role] of [
    ['dev', 'developer'],
    ['maint', 'maintainer'],
  ]) {
    await as('root').request(`/api/v1/projects/${name}/members/${user}`, { method: 'PUT', body: JSON.stringify({ role }) });
  }
  for (const key of options.keys ?? [trusted]) {
    const body = typeof key === 'string' ? key : new Uint8Array(key.publicBinary);
    const res = await as('root').request(`/api/v1/projects/${name}/keys`, { method: 'POST', body });
    if (res.status !== 201) throw new Error(`key upload: ${res.status} ${await res.text()}`);
  }
  await as('root').request(`/api/v1/projects/${name}`, {
    method: 'PATCH',
    body: JSON.stringify({ signedOnly: options.signedOnly ?? true }),
  });
}

async function push(user: User, repo: string, tag: string, image: Image = makeImage({ layers: 1 })): Promise<Image> {
  const res = await as(user).pushImage(repo, image, tag);
  if (res.status !== 201) throw new Error(`push ${res.status}`);
  return image;
}

function putSignature(user: User, repo: string, digest: string, bytes: Uint8Array): Promise<Response> {
  return as(user).request(`/extensions/v2/${repo}/signatures/${digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${digest}@${randomBytes(16).toString('hex')}`,
      type: 'atomic',
      content: Buffer.from(bytes).toString('base64'),
    }),
  });
}

async function refusal(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  return `${res.status} ${body.errors[0]?.code}: ${body.errors[0]?.message}`;
}

async function pushArtifact(user: User, repo: string, reference: string, blobs: Blob[], manifest: Blob): Promise<void> {
  for (const blob of blobs) await as(user).pushBlob(repo, blob);
  const res = await as(user).pushManifest(repo, reference, manifest);
  if (res.status !== 201) throw new Error(`artifact push ${res.status} ${await res.text()}`);
}

test('labels do not open the gate: artifact types, a labelled extra layer, relabelled layers, a .sig tag', async (t) => {
  await project('lab');
  const image = makeImage({ layers: 1 });
  for (const blob of [image.config, ...image.layers]) await as('dev').pushBlob('lab/app', blob);
  const config = descriptorOf(image.config);
  const layers = image.layers.map((l) => descriptorOf(l));
  const payloadLayer = cosignSignatureManifest(makeCosignKey(), image.manifest.digest, `${registry.host}/lab/app`).payload;
  await as('dev').pushBlob('lab/app', payloadLayer);
  const attacks: [string, Blob, string][] = [
    ['artifactType cosign', manifestOf({ artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', config, layers }), 'a1'],
    ['artifactType notation', manifestOf({ artifactType: 'application/vnd.cncf.notary.signature', config, layers }), 'a2'],
    [
      'an extra signature layer',
      manifestOf({ config, layers: [...layers, descriptorOf(payloadLayer, { annotations: SIG_ANNOTATION })] }),
      'a3',
    ],
    [
      'every layer relabelled',
      manifestOf({ config, layers: layers.map((l) => ({ ...l, mediaType: COSIGN_SIMPLESIGNING, annotations: SIG_ANNOTATION })) }),
      'a4',
    ],
    ['a cosign signature tag', image.manifest, `sha256-${randomBytes(32).toString('hex')}.sig`],
  ];
  for (const [what, manifest, tag] of attacks) {
    // Under cosign's signature tag or type the developer's push is refused (no signature by a
    // trusted key for that digest); the registry admin's is taken, and still opens nothing.
    const pushed = await as('dev').pushManifest('lab/app', tag, manifest);
    if (pushed.status === 403) t.is((await as('root').pushManifest('lab/app', tag, manifest)).status, 201, what);
    else t.is(pushed.status, 201, what);
    for (const reference of [tag, manifest.digest]) {
      const res = await as('dev').getManifest('lab/app', reference);
      t.is(res.status, 412, `${what}, by ${reference}`);
      t.regex(await refusal(res), /PROJECTPOLICYVIOLATION: .*not signed/, what);
    }
  }
});

test('keys Go clients match regardless of case smuggle no image past the gate, whether pushed or already stored', async (t) => {
  // A developer's runnable, unsigned image, hidden in a cosign signature artifact under keys that
  // Go's encoding/json (docker, containerd, containers/image) reads as `config`, `layers`,
  // `digest`: the registry saw the signature, every client the image (adversarial testing).
  await project('fold');
  const image = makeImage({ layers: 1 });
  for (const blob of [image.config, ...image.layers]) await as('dev').pushBlob('fold/app', blob);
  const artifact = cosignSignatureManifest(makeCosignKey(), image.manifest.digest, `${registry.host}/fold/app`);
  for (const blob of artifact.blobs) await as('dev').pushBlob('fold/app', blob);
  // A maintainer's push, as a developer may not push cosign signatures by untrusted keys here.
  const { config, layers } = JSON.parse(artifact.manifest.data.toString()) as { config: object; layers: object[] };
  const runnable = { config: descriptorOf(image.config), layers: image.layers.map((l) => descriptorOf(l)) };
  const layer = image.layers[0]!;
  const disguises: [string, Record<string, unknown>][] = [
    ['Config and Layers after config and layers', { config, layers, Config: runnable.config, Layers: runnable.layers }],
    ['layerſ (U+017F folds to s)', { config, layers, layerſ: runnable.layers }],
    [
      'Digest, Size and MediaType in a layer',
      { config, layers: [{ ...layers[0], MediaType: layer.mediaType, Digest: layer.digest, Size: layer.size }] },
    ],
  ];
  for (const [what, fields] of disguises) {
    const manifest = manifestOf(fields);
    const pushed = await as('dev').pushManifest('fold/app', 'latest', manifest);
    t.is(pushed.status, 400, what);
    t.regex(await refusal(pushed), /MANIFEST_INVALID: ambiguous manifest: .*\(read as (config|layers|digest|size|mediaType)\)/, what);
    // Stored before this rule existed: the gate judges it the same way.
    const record = { digest: manifest.digest, mediaType: manifest.mediaType, content: manifest.data, size: manifest.size };
    await registry.registry.deps.metadata.manifests.save('fold/app', record, [], 'stored');
    for (const reference of ['stored', manifest.digest]) {
      const served = await as('dev').getManifest('fold/app', reference);
      t.is(served.status, 412, `${what}, by ${reference}`);
      t.regex(await refusal(served), /PROJECTPOLICYVIOLATION: .*ambiguous manifest/, what);
    }
  }
  // The signature artifact as cosign wrote it is still served.
  await pushArtifact('maint', 'fold/app', artifact.tag, [], artifact.manifest);
  t.is((await as('dev').getManifest('fold/app', artifact.tag)).status, 200);
});

test('real signature artifacts are served for verifying clients: cosign .sig, sigstore bundle and Notation referrers', async (t) => {
  const key = makeCosignKey();
  await project('art', { keys: [key.publicPem] });
  const image = await push('dev', 'art/app', 'v1');
  const sig = cosignSignatureManifest(key, image.manifest.digest, `${registry.host}/art/app`);
  await pushArtifact('dev', 'art/app', sig.tag, sig.blobs, sig.manifest);
  const got = await as('dev').getManifest('art/app', sig.tag);
  t.is(got.status, 200, 'the .sig manifest is served by its tag');
  t.deepEqual(Buffer.from(await got.arrayBuffer()), sig.manifest.data);
  t.is((await as('dev').request(`/v2/art/app/blobs/${sig.payload.digest}`)).status, 200);
  // cosign's identity names the repository only: the pull by tag is accepted (matchRepository).
  t.is((await as('dev').getManifest('art/app', 'v1')).status, 200);

  for (const referrer of [sigstoreBundleReferrer(image.manifest), notationReferrer(image.manifest)]) {
    await pushArtifact('dev', 'art/app', referrer.manifest.digest, referrer.blobs, referrer.manifest);
    const list = (await (await as('dev').request(`/v2/art/app/referrers/${image.manifest.digest}`)).json()) as {
      manifests: { digest: string }[];
    };
    t.true(list.manifests.some((m) => m.digest === referrer.manifest.digest));
    t.is((await as('dev').getManifest('art/app', referrer.manifest.digest)).status, 200);
  }
});

test('cosign signatures as cosign writes them (repository only) open the gate by tag and digest; for another repository they do not', async (t) => {
  const key = makeCosignKey();
  await project('cos', { keys: [key.publicPem] });
  const image = await push('dev', 'cos/app', 'v1');
  t.is((await as('dev').getManifest('cos/app', 'v1')).status, 412);
  const wrong = cosignSignatureManifest(key, image.manifest.digest, `${registry.host}/cos/other`);
  await pushArtifact('dev', 'cos/app', wrong.tag, wrong.blobs, wrong.manifest);
  const refused = await as('dev').getManifest('cos/app', 'v1');
  t.is(refused.status, 412);
  t.regex(await refusal(refused), /signed for repository cos\/other/);
  const sig = cosignSignatureManifest(key, image.manifest.digest, `${registry.host}/cos/app`);
  await pushArtifact('dev', 'cos/app', sig.tag, sig.blobs, sig.manifest);
  t.is((await as('dev').getManifest('cos/app', 'v1')).status, 200);
  t.is((await as('dev').getManifest('cos/app', image.manifest.digest)).status, 200);
  const policy = (await (await as('dev').request('/api/v1/projects/cos/policy.json')).json()) as {
    transports: { docker: Record<string, { type: string; signedIdentity: { type: string } }[]> };
  };
  t.deepEqual(policy.transports.docker[`${registry.host}/cos`]![0]!.signedIdentity, { type: 'matchRepository' });
});

test('identities are compared exactly: a signature naming LOCALHOST does not open a pull through localhost', async (t) => {
  await project('case');
  const image = await push('dev', 'case/app', 'v1');
  const port = new URL(registry.url).port;
  const viaLocalhost = `http://localhost:${port}`;
  t.is(
    (
      await putSignature(
        'dev',
        'case/app',
        image.manifest.digest,
        await sign(trusted, payload(image.manifest.digest, `LOCALHOST:${port}/case/app:v1`)),
      )
    ).status,
    201,
  );
  const refused = await as('dev', viaLocalhost).getManifest('case/app', 'v1');
  t.is(refused.status, 412);
  t.regex(await refusal(refused), /signed for registry LOCALHOST:\d+, not localhost:\d+/);
  t.is(
    (
      await putSignature(
        'dev',
        'case/app',
        image.manifest.digest,
        await sign(trusted, payload(image.manifest.digest, `localhost:${port}/case/app:v1`)),
      )
    ).status,
    201,
  );
  t.is((await as('dev', viaLocalhost).getManifest('case/app', 'v1')).status, 200);
});

test('a signing subkey that expired after it signed no longer opens the gate, and the message says so', async (t) => {
  const created = new Date(Date.now() - 3 * 86400_000);
  const key = await makeKeyWithSigningSubkey({ date: created, expiresInSeconds: 86400 });
  await project('exp', { keys: [], signedOnly: false });
  const image = await push('dev', 'exp/app', 'v1');
  // Made while the subkey was valid (and stored before the project trusted the key).
  const signature = await sign(key, payload(image.manifest.digest, `${registry.host}/exp/app:v1`), {
    subkey: true,
    date: new Date(created.getTime() + 3600_000),
  });
  t.is((await putSignature('dev', 'exp/app', image.manifest.digest, signature)).status, 201);
  t.is((await as('root').request('/api/v1/projects/exp/keys', { method: 'POST', body: new Uint8Array(key.publicBinary) })).status, 201);
  await as('root').request('/api/v1/projects/exp', { method: 'PATCH', body: JSON.stringify({ signedOnly: true }) });
  const res = await as('dev').getManifest('exp/app', 'v1');
  t.is(res.status, 412);
  t.regex(await refusal(res), /signing subkey [0-9A-F]{16} of key [0-9A-F]{40} expired on/);
});

test('re-uploading a trusted key merges it: a revoked subkey closes the gate at once, an old export cannot undo it', async (t) => {
  const key = await makeKeyWithSigningSubkey();
  await project('rev', { keys: [key] });
  const image = await push('dev', 'rev/app', 'v1');
  t.is(
    (
      await putSignature(
        'dev',
        'rev/app',
        image.manifest.digest,
        await sign(key, payload(image.manifest.digest, `${registry.host}/rev/app:v1`), { subkey: true }),
      )
    ).status,
    201,
  );
  t.is((await as('dev').getManifest('rev/app', 'v1')).status, 200);

  const revoked = await revokeSigningSubkey(key);
  const update = await as('root').request('/api/v1/projects/rev/keys', { method: 'POST', body: new Uint8Array(revoked.publicBinary) });
  t.is(update.status, 200);
  t.is(((await update.json()) as { outcome: string }).outcome, 'updated');
  const closed = await as('dev').getManifest('rev/app', 'v1');
  t.is(closed.status, 412);
  t.regex(await refusal(closed), /signing subkey [0-9A-F]{16} of key [0-9A-F]{40} has been revoked/);
  // The exported policy carries the merged key, revocation included.
  const policy = (await (await as('dev').request('/api/v1/projects/rev/policy.json')).json()) as {
    transports: { docker: Record<string, { keyData: string }[]> };
  };
  const exported = Buffer.from(policy.transports.docker[`${registry.host}/rev`]![0]!.keyData, 'base64');
  t.true(exported.length > Buffer.from(key.publicBinary).length);

  const again = await as('root').request('/api/v1/projects/rev/keys', { method: 'POST', body: new Uint8Array(key.publicBinary) });
  t.is(((await again.json()) as { outcome: string }).outcome, 'unchanged');
  t.is((await as('dev').getManifest('rev/app', 'v1')).status, 412, 'the old export did not undo the revocation');
});

test('clock skew: a signature dated 20 s ahead is accepted; one dated 10 minutes ahead is refused, saying so', async (t) => {
  await project('skew');
  const image = await push('dev', 'skew/app', 'v1');
  const ahead = (seconds: number) =>
    sign(trusted, payload(image.manifest.digest, `${registry.host}/skew/app:v1`), { date: new Date(Date.now() + seconds * 1000) });
  const far = await putSignature('dev', 'skew/app', image.manifest.digest, await ahead(600));
  t.is(far.status, 400);
  t.regex(await refusal(far), /SIGNATURE_INVALID: .*in the future \(at most 300 s of clock skew is accepted\)/);
  t.is((await putSignature('dev', 'skew/app', image.manifest.digest, await ahead(20))).status, 201);
  t.is((await as('dev').getManifest('skew/app', 'v1')).status, 200);
});

test('signature lists stay within what clients read: size bounds, and no untrusted signatures from developers in signed-only projects', async (t) => {
  await project('lim');
  const image = await push('dev', 'lim/app', 'v1');
  const digest = image.manifest.digest;
  const stranger = await makeKey({ name: 'Stranger' });
  const refused = await putSignature('dev', 'lim/app', digest, await sign(stranger, payload(digest, `${registry.host}/lim/app:v1`)));
  t.is(refused.status, 403);
  t.regex(await refusal(refused), /DENIED: key [0-9A-F]{16} is not trusted by project lim/);
  t.is(
    (await putSignature('maint', 'lim/app', digest, await sign(stranger, payload(digest, `${registry.host}/lim/app:v1`)))).status,
    201,
    'a maintainer may',
  );

  const padded = (bytes: number) =>
    payload(digest, `${registry.host}/lim/app:v1`, { optional: { padding: randomBytes(bytes).toString('base64') } });
  t.is((await putSignature('dev', 'lim/app', digest, await sign(trusted, padded(70 * 1024)))).status, 413, 'over 64 KiB');
  let stored = 0;
  let last: Response | undefined;
  for (let i = 0; i < 40; i++) {
    last = await putSignature('dev', 'lim/app', digest, await sign(trusted, padded(45 * 1024)));
    if (last.status !== 201) break;
    stored += 1;
  }
  t.true(stored >= 30 && stored < 40, `stored ${stored}`);
  t.is(last?.status, 409);
  t.regex(await refusal(last!), /would pass 2097152 bytes together/);
  const list = await as('dev').request(`/extensions/v2/lim/app/signatures/${digest}`);
  t.true(Number((await list.arrayBuffer()).byteLength) < 4 * 1024 * 1024);
  t.is((await as('dev').getManifest('lim/app', 'v1')).status, 200, 'piling signatures on did not make it unpullable');
});

test('a compression bomb uploaded as a signature is refused at the decompression limit', async (t) => {
  await project('bomb', { signedOnly: false });
  const image = await push('dev', 'bomb/app', 'v1');
  const res = await putSignature('dev', 'bomb/app', image.manifest.digest, await compressionBomb(16 * 1024 * 1024));
  t.is(res.status, 400);
  t.regex(await refusal(res), /SIGNATURE_INVALID: .*Maximum decompressed message size exceeded/);
  const nested = await putSignature('dev', 'bomb/app', image.manifest.digest, await compressionBomb(64 * 1024, { nested: true }));
  t.is(nested.status, 400, 'a compressed packet inside a compressed packet is refused');
  t.is((await as('dev').request(`/extensions/v2/bomb/app/signatures/${image.manifest.digest}`)).status, 200);
});

test("a pull's cost is bounded whatever is pushed: each distinct signature judged once, 128 per manifest, an index's duplicates once", async (t) => {
  const key = makeCosignKey();
  await project('cost', { keys: [key.publicPem] });
  const image = await push('dev', 'cost/app', 'v1');
  const trustOf = async (tag: string) => {
    const res = await as('dev').request(`/api/v1/projects/cost/repositories/app/trust?n=200`);
    const body = (await res.json()) as { tags: { name: string; state: string; gate: { reason?: string }; signatures: unknown[] }[] };
    return body.tags.find((entry) => entry.name === tag)!;
  };
  // A .sig manifest of 2,000 layers naming one 100 KiB payload with one signature: judged once.
  const payload = blobOf(Buffer.from(JSON.stringify({ critical: {}, optional: { pad: 'x'.repeat(100 * 1024) } })), COSIGN_SIMPLESIGNING);
  const layer = descriptorOf(payload, { annotations: SIG_ANNOTATION });
  const same = manifestOf({ config: descriptorOf(EMPTY_CONFIG), layers: Array.from({ length: 2000 }, () => layer) });
  const tag = `${image.manifest.digest.replace(':', '-')}.sig`;
  // Pushed by a maintainer: a developer may not push untrusted cosign signatures here.
  await pushArtifact('maint', 'cost/app', tag, [EMPTY_CONFIG, payload], same);
  let judged = await trustOf('v1');
  t.is(judged.signatures.length, 1);
  t.is(judged.state, 'untrusted');
  // 100 distinct signatures over that payload: judged until 8 MiB of payloads were read.
  const signed = (count: number, over: Blob) =>
    manifestOf({
      config: descriptorOf(EMPTY_CONFIG),
      layers: Array.from({ length: count }, (_, i) =>
        descriptorOf(over, { annotations: { 'dev.cosignproject.cosign/signature': Buffer.from(`junk ${i}`).toString('base64') } }),
      ),
    });
  await pushArtifact('maint', 'cost/app', tag, [], signed(100, payload));
  judged = await trustOf('v1');
  t.is(judged.signatures.length, Math.floor((8 * 1024 * 1024) / payload.size));
  t.regex(judged.gate.reason ?? '', /only 8388608 bytes of cosign payloads are read per pull/);
  // 300 distinct signatures over a small payload: the first 128 are judged, and the refusal says so.
  const small = blobOf(Buffer.from(JSON.stringify({ critical: {}, optional: null })), COSIGN_SIMPLESIGNING);
  await pushArtifact('maint', 'cost/app', tag, [small], signed(300, small));
  judged = await trustOf('v1');
  t.is(judged.signatures.length, 128);
  t.regex(judged.gate.reason ?? '', /only the first 128 signatures of a manifest are judged/);
  const pulled = await as('dev').getManifest('cost/app', 'v1');
  t.is(pulled.status, 412);
  t.regex(await refusal(pulled), /only the first 128 signatures/);

  // An index listing one unsigned manifest 5,000 times: it is judged once.
  const unsigned = await push('dev', 'cost/app', 'plain');
  const entry = { ...descriptorOf(unsigned.manifest), platform: { os: 'linux', architecture: 'amd64' } };
  const index = manifestOf({ manifests: Array.from({ length: 5000 }, () => entry) }, 'application/vnd.oci.image.index.v1+json');
  t.is((await as('dev').pushManifest('cost/app', 'multi', index)).status, 201);
  judged = await trustOf('multi');
  t.is(judged.state, 'unsigned');
  t.regex(judged.gate.reason ?? '', /not signed/);
  t.notRegex(judged.gate.reason ?? '', /are judged|are read/);
});

test('in a signed-only project a developer pushes only cosign signatures by trusted keys: junk cannot crowd out a valid referrer', async (t) => {
  const key = makeCosignKey();
  await project('crowd', { keys: [key.publicPem] });
  const image = await push('dev', 'crowd/app', 'v1');
  // The valid signature as an OCI 1.1 referrer of cosign's artifact type, pushed by the developer.
  const valid = cosignSignatureManifest(key, image.manifest.digest, `${registry.host}/crowd/app`);
  const { config, layers } = JSON.parse(valid.manifest.data.toString()) as { config: object; layers: object[] };
  const referrer = (withLayers: object[]) =>
    manifestOf({
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      config,
      layers: withLayers,
      subject: descriptorOf(image.manifest),
    });
  await pushArtifact('dev', 'crowd/app', referrer(layers).digest, valid.blobs, referrer(layers));
  t.is((await as('dev').getManifest('crowd/app', 'v1')).status, 200);
  // Junk referrers and a junk .sig tag: refused to the developer, so the valid one stays judged.
  const stranger = cosignSignatureManifest(makeCosignKey(), image.manifest.digest, `${registry.host}/crowd/app`);
  for (const blob of stranger.blobs) await as('dev').pushBlob('crowd/app', blob);
  const strangerLayers = (JSON.parse(stranger.manifest.data.toString()) as { layers: object[] }).layers;
  for (let i = 0; i < 3; i++) {
    const junk = manifestOf({
      ...(JSON.parse(referrer(strangerLayers).data.toString()) as Record<string, unknown>),
      annotations: { n: String(i) },
    });
    const res = await as('dev').pushManifest('crowd/app', junk.digest, junk);
    t.is(res.status, 403);
    t.regex(await refusal(res), /DENIED: .*not by a key it trusts: only maintainers may push cosign signatures/);
  }
  t.is((await as('dev').pushManifest('crowd/app', stranger.tag, stranger.manifest)).status, 403);
  // Nor referrers without any signature, nor a trusted signature of another image replayed, nor a
  // .sig tag replaced by a manifest without signatures.
  const bare = manifestOf({ ...(JSON.parse(referrer([]).data.toString()) as Record<string, unknown>), annotations: { bare: 'yes' } });
  const none = await as('dev').pushManifest('crowd/app', bare.digest, bare);
  t.is(none.status, 403);
  t.regex(await refusal(none), /carries none/);
  const elsewhere = await push('dev', 'crowd/app', 'other');
  const replayedFrom = cosignSignatureManifest(key, elsewhere.manifest.digest, `${registry.host}/crowd/app`);
  for (const blob of replayedFrom.blobs) await as('dev').pushBlob('crowd/app', blob);
  const replayed = referrer((JSON.parse(replayedFrom.manifest.data.toString()) as { layers: object[] }).layers);
  const replay = await as('dev').pushManifest('crowd/app', replayed.digest, replayed);
  t.is(replay.status, 403);
  t.regex(await refusal(replay), new RegExp(`not for ${image.manifest.digest}`));
  t.is((await as('dev').pushManifest('crowd/app', valid.tag, manifestOf({ config, layers: [] }))).status, 403);
  t.is((await as('dev').getManifest('crowd/app', 'v1')).status, 200);
  // The developer's own signature by the trusted key goes in under the .sig tag; a maintainer may push the stranger's.
  t.is((await as('dev').pushManifest('crowd/app', valid.tag, valid.manifest)).status, 201);
  t.is((await as('maint').pushManifest('crowd/app', stranger.tag, stranger.manifest)).status, 201);
  // Outside signed-only projects nothing changes.
  await project('loose', { keys: [key.publicPem], signedOnly: false });
  const other = await push('dev', 'loose/app', 'v1');
  const loose = cosignSignatureManifest(makeCosignKey(), other.manifest.digest, `${registry.host}/loose/app`);
  await pushArtifact('dev', 'loose/app', loose.tag, loose.blobs, loose.manifest);
  t.pass();
});

test('unsigned indexes listing a platform manifest cannot crowd out the signed one it is pulled by digest through', async (t) => {
  await project('parents');
  const image = await push('dev', 'parents/app', 'plain');
  const index = makeIndex([image]);
  t.is((await as('dev').pushManifest('parents/app', 'v1', index)).status, 201);
  t.is(
    (
      await putSignature(
        'maint',
        'parents/app',
        index.digest,
        await sign(trusted, payload(index.digest, `${registry.host}/parents/app:v1`)),
      )
    ).status,
    201,
  );
  t.is((await as('dev').getManifest('parents/app', image.manifest.digest)).status, 200);
  // 70 unsigned, untagged indexes listing it, 64 of them sorting ahead of the signed one.
  let ahead = 0;
  for (let i = 0; ahead < 64 || i < 70; i++) {
    const junk = blobOf(
      Buffer.from(JSON.stringify({ ...(JSON.parse(index.data.toString()) as object), annotations: { n: String(i) } })),
      index.mediaType,
    );
    if (junk.digest > index.digest && ahead < 64 && i >= 70) continue;
    t.is((await as('dev').pushManifest('parents/app', junk.digest, junk)).status, 201);
    if (junk.digest < index.digest) ahead += 1;
  }
  const pulled = await as('dev').getManifest('parents/app', image.manifest.digest);
  t.is(pulled.status, 200, pulled.status === 200 ? '' : await refusal(pulled));
});
