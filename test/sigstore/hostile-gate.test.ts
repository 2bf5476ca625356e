// The signed-only gate against a hostile project developer, property-based over real HTTP. The
// developer may push anything (they hold the push right) but has no trusted key. Starting from
// unsigned, runnable content (tar archives among them that are also strict JSON), they push manifests with any mix of manifest media type,
// artifactType, config, layer media types and annotations, subject, tags (cosign's
// `sha256-<hex>.sig`/.att/.sbom, ordinary ones, the signed image's own tag) and index wrappings,
// ambiguous ones included, and keys only Go clients read as `layers` or `digest`. Whatever the
// registry then serves (read as a Go client reads it), by tag or by digest, and whatever
// a client reaches from it (an index's children), is either the image its owner signed or a
// manifest with no layer that could unpack into a file system and no config that runs anything.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import test from 'ava';
import fc from 'fast-check';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { makeCosignKey } from '../helpers/cosign.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, makeImage, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, tarOf, type Blob } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import {
  COSIGN_SIMPLESIGNING,
  cosignAttestation,
  cosignConfig,
  cosignPayload,
  cosignSignatureManifest,
  descriptorOf,
  EMPTY_CONFIG,
  jsonTarPolyglot,
  manifestOf,
  notationReferrer,
  POLYGLOT_WRAPPERS,
  sigstoreBundleReferrer,
} from '../helpers/signature-artifacts.js';
import { makeKey, payload, sign } from '../helpers/signing.js';

const USERS = { root: 'root-pw', dev: 'dev-pw' };
const REPO = 'hostile/app';
let registry: TestRegistry;
let dir: string;
const root = () => createClient(registry.url, { Authorization: basic('root', USERS.root) });
const dev = () => createClient(registry.url, { Authorization: basic('dev', USERS.dev) });

/** The one image its owner signed (for tag `release`), and the blobs the developer pushed. */
let signedDigest: string;
let signedManifest: Blob;
let pool: { layers: Blob[]; configs: Blob[]; manifests: Blob[] };

const elf = Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01'), Buffer.alloc(9), Buffer.from([2, 0, 0x3e, 0])]);

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-hostile-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  const owner = await makeKey({ name: 'Owner' });
  await root().request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'hostile', public: false }) });
  await root().request('/api/v1/projects/hostile/members/dev', { method: 'PUT', body: JSON.stringify({ role: 'developer' }) });
  await root().request('/api/v1/projects/hostile/keys', { method: 'POST', body: new Uint8Array(owner.publicBinary) });
  // The owner's signed image.
  const signed = makeImage({ layers: 1 });
  if ((await root().pushImage(REPO, signed, 'release')).status !== 201) throw new Error('push of the signed image failed');
  signedDigest = signed.manifest.digest;
  signedManifest = signed.manifest;
  const signature = await sign(owner, payload(signedDigest, `${registry.host}/${REPO}:release`));
  const stored = await root().request(`/extensions/v2/${REPO}/signatures/${signedDigest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${signedDigest}@${'0'.repeat(32)}`,
      type: 'atomic',
      content: Buffer.from(signature).toString('base64'),
    }),
  });
  if (stored.status !== 201) throw new Error(`signature upload failed: ${stored.status}`);
  await root().request('/api/v1/projects/hostile', { method: 'PATCH', body: JSON.stringify({ signedOnly: true }) });

  // The developer's material: runnable layers and signature-looking blobs.
  const subject = signed.manifest;
  const cosignSig = cosignSignatureManifest(makeCosignKey(), signedDigest, `${registry.host}/${REPO}`);
  const layers = [
    blobOf(gzipSync(tarOf({ 'bin/tool': elf })), OCI_LAYER),
    blobOf(tarOf({ 'bin/tool': elf, 'run.sh': Buffer.from('#!/bin/sh\n') }), OCI_LAYER),
    cosignPayload(signedDigest, `${registry.host}/${REPO}`),
    cosignPayload(signedDigest, `${registry.host}/${REPO}:release`, { creator: 'x' }),
    sigstoreBundleReferrer(subject).blobs[1]!,
    notationReferrer(subject).blobs[1]!,
    cosignAttestation(subject).blobs[1]!,
    // Strict JSON that is also a tar archive of shell scripts (a DSSE envelope, a cosign payload).
    ...(['dsse', 'cosign'] as const).map((kind) =>
      blobOf(
        jsonTarPolyglot([{ name: 'usr/local/bin/setup.sh', content: 'echo unsigned code ran; id' }], POLYGLOT_WRAPPERS[kind]),
        POLYGLOT_WRAPPERS[kind].mediaType,
      ),
    ),
  ];
  const configs = [
    EMPTY_CONFIG,
    cosignConfig([layers[2]!]),
    blobOf(
      Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: { Entrypoint: ['/bin/tool'] },
          rootfs: { type: 'layers', diff_ids: [] },
        }),
      ),
      'application/vnd.oci.image.config.v1+json',
    ),
  ];
  for (const blob of [...layers, ...configs, ...cosignSig.blobs]) {
    const res = await dev().pushBlob(REPO, blob);
    if (res.status !== 201) throw new Error(`blob push failed: ${res.status}`);
  }
  pool = { layers, configs, manifests: [signed.manifest] };
});
test.after.always(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

const isRunnable = (bytes: Buffer): boolean => {
  let data = bytes;
  if (data[0] === 0x1f && data[1] === 0x8b) {
    try {
      data = gunzipSync(data);
    } catch {
      return true; // a client might still try it: treat anything gzip-shaped as runnable
    }
  }
  // Any binary, or a tar archive, which can be printable text: GNU tar, reading on past blocks that
  // hold no header, lists a file in it.
  if (data.includes(0)) return true;
  const listed = spawnSync('tar', ['-t', '--ignore-zeros', '-f', '-'], { input: data, encoding: 'utf8' });
  return listed.stdout.trim() !== '';
};

/** The fields a client follows, with the characters Go's case folding maps onto their letters. */
const GO_FIELDS = ['manifests', 'layers', 'config', 'digest', 'mediaType', 'size'];
const goFold = (key: string): string =>
  key
    .replace(/\u017f/g, 's')
    .replace(/\u212a/g, 'k')
    .toLowerCase();

/**
 * A document as a Go client (docker, containerd, containers/image) decodes it: encoding/json
 * matches keys to fields regardless of case, the last match winning.
 */
function goView(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(goView);
  if (typeof value !== 'object' || value === null) return value;
  const view: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(value)) view[GO_FIELDS.find((f) => goFold(f) === goFold(key)) ?? key] = goView(child);
  return view;
}

/** Follows what a client could fetch from `reference`; fails the property on anything runnable and unsigned. */
async function reachable(reference: string, depth = 0): Promise<string | undefined> {
  const res = await dev().getManifest(REPO, reference);
  if (res.status !== 200) {
    await res.body?.cancel();
    if (res.status !== 412 && res.status !== 404) return `GET ${reference}: unexpected ${res.status}`;
    return undefined;
  }
  const digest = res.headers.get('docker-content-digest');
  const body = goView(await res.json()) as { manifests?: { digest: string }[]; layers?: { digest: string }[]; config?: { digest: string } };
  if (digest === signedDigest) return undefined;
  if (body.manifests) {
    if (depth > 2) return `GET ${reference}: index nesting`;
    for (const child of body.manifests) {
      const problem = await reachable(child.digest, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  const layers = body.layers ?? [];
  if (layers.length === 0) return `served ${reference}: an image with no layers, not a signature`;
  for (const layer of layers) {
    const blob = Buffer.from(await (await dev().request(`/v2/${REPO}/blobs/${layer.digest}`)).arrayBuffer());
    if (isRunnable(blob)) return `served ${reference} (${digest}) with the runnable layer ${layer.digest}`;
  }
  if (body.config) {
    const config = JSON.parse(
      Buffer.from(await (await dev().request(`/v2/${REPO}/blobs/${body.config.digest}`)).arrayBuffer()).toString(),
    ) as { config?: object };
    if (config.config && Object.keys(config.config).length > 0) return `served ${reference} (${digest}) whose config runs something`;
  }
  return undefined;
}

const LAYER_TYPES = [
  COSIGN_SIMPLESIGNING,
  OCI_LAYER,
  'application/vnd.dsse.envelope.v1+json',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/jose+json',
  'application/vnd.oci.image.layer.v1.tar',
];
const ARTIFACT_TYPES = [
  undefined,
  'application/vnd.dev.cosign.artifact.sig.v1+json',
  'application/vnd.cncf.notary.signature',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/vnd.example.sbom',
];
const hex = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

const imageChoice = fc.record({
  mediaType: fc.constantFrom(OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json'),
  artifactType: fc.constantFrom(...ARTIFACT_TYPES),
  config: fc.nat(2),
  layers: fc.array(fc.record({ blob: fc.nat(8), mediaType: fc.constantFrom(...LAYER_TYPES), annotate: fc.boolean() }), {
    minLength: 1,
    maxLength: 3,
  }),
  subject: fc.boolean(),
  annotations: fc.boolean(),
  // A runnable layer under a key only Go clients read as `layers` or `digest`.
  smuggle: fc.oneof(
    { arbitrary: fc.constant<'no' | 'Layers' | 'LAYERſ' | 'Digest'>('no'), weight: 3 },
    { arbitrary: fc.constantFrom<'no' | 'Layers' | 'LAYERſ' | 'Digest'>('Layers', 'LAYERſ', 'Digest'), weight: 1 },
  ),
});

/** Tags; `SIGNED` stands for the signed image's digest in cosign's tag form (known after set-up). */
const tagChoice = fc.oneof(
  fc.constantFrom('SIGNED.sig', 'SIGNED.att', 'SIGNED.sbom', 'release'),
  fc.constantFrom('sig', 'att', 'sbom').chain((suffix) => hex.map((h) => `sha256-${h}.${suffix}`)),
  fc.nat(50).map((n) => `v${n}`),
);
const resolveTag = (tag: string): string => tag.replace('SIGNED', signedDigest.replace(':', '-'));

const pushChoice = fc.record({
  image: imageChoice,
  tag: tagChoice,
  wrap: fc.constantFrom<'no' | 'index' | 'index-with-signed' | 'ambiguous'>('no', 'index', 'index-with-signed', 'ambiguous'),
  indexTag: tagChoice,
});

type ImageChoice = typeof imageChoice extends fc.Arbitrary<infer T> ? T : never;

function buildImage(choice: ImageChoice): Blob {
  const config = pool.configs[choice.config]!;
  const runnable = pool.layers[0]!;
  const layers: object[] = choice.layers.map((l) =>
    descriptorOf(
      { ...pool.layers[l.blob]!, mediaType: l.mediaType },
      l.annotate ? { annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } } : {},
    ),
  );
  if (choice.smuggle === 'Digest') layers[0] = { ...layers[0], Digest: runnable.digest, Size: runnable.size };
  return manifestOf(
    {
      ...(choice.artifactType ? { artifactType: choice.artifactType } : {}),
      config: descriptorOf(config),
      layers,
      ...(choice.smuggle === 'Layers' || choice.smuggle === 'LAYERſ' ? { [choice.smuggle]: [descriptorOf(runnable)] } : {}),
      ...(choice.subject ? { subject: descriptorOf(signedManifest) } : {}),
      ...(choice.annotations ? { annotations: { 'org.opencontainers.image.title': 'signature' } } : {}),
    },
    choice.mediaType,
  );
}

test('property: a developer without a trusted key gets nothing runnable served, whatever they push', async (t) => {
  let pushed = 0;
  let smuggled = 0;
  let refusedToDeveloper = 0;
  await fc.assert(
    fc.asyncProperty(pushChoice, async (choice) => {
      const image = buildImage(choice.image);
      let put = await dev().pushManifest(REPO, resolveTag(choice.tag), image);
      if (put.status === 403) {
        // cosign signatures by a key the project does not trust: only maintainers push them here
        // (the developer's own is refused). Pushed by one, the gate must still serve nothing runnable.
        await put.body?.cancel();
        refusedToDeveloper += 1;
        put = await root().pushManifest(REPO, resolveTag(choice.tag), image);
      }
      if (choice.image.smuggle !== 'no') {
        // Refused outright; what the tag and digest serve is checked all the same.
        if (put.status !== 400) throw new Error(`a manifest with ${choice.image.smuggle} was answered ${put.status}`);
        smuggled += 1;
        for (const reference of [resolveTag(choice.tag), image.digest]) {
          const problem = await reachable(reference);
          if (problem) throw new Error(problem);
        }
        return;
      }
      if (put.status !== 201) throw new Error(`image push: ${put.status} ${await put.text()}`);
      pushed += 1;
      const references = [resolveTag(choice.tag), image.digest];
      if (choice.wrap !== 'no') {
        const children = [image, ...(choice.wrap === 'index-with-signed' ? [signedManifest] : [])];
        const index = manifestOf(
          {
            manifests: children.map((c) => ({ ...descriptorOf(c), platform: { os: 'linux', architecture: 'amd64' } })),
            ...(choice.wrap === 'ambiguous' ? { config: descriptorOf(pool.configs[2]!), layers: [descriptorOf(pool.layers[0]!)] } : {}),
          },
          OCI_INDEX,
        );
        let res = await dev().pushManifest(REPO, resolveTag(choice.indexTag), index);
        if (res.status === 403) {
          // Under cosign's signature tag: the developer's refused (it carries no signature), the admin's taken.
          await res.body?.cancel();
          refusedToDeveloper += 1;
          res = await root().pushManifest(REPO, resolveTag(choice.indexTag), index);
        }
        if (choice.wrap === 'ambiguous') {
          if (res.status !== 400) throw new Error(`an ambiguous index was answered ${res.status}`);
        } else if (res.status !== 201) throw new Error(`index push: ${res.status}`);
        references.push(resolveTag(choice.indexTag), index.digest);
      }
      for (const reference of references) {
        const problem = await reachable(reference);
        if (problem) throw new Error(problem);
      }
    }),
    { seed: 14, numRuns: 150 },
  );
  t.true(
    pushed >= 80 && smuggled >= 20 && refusedToDeveloper >= 5,
    `${pushed} pushed, ${smuggled} smuggled, ${refusedToDeveloper} refused to the developer`,
  );
  // The owner's image is still served, by its tag and digest, unless the developer re-tagged it.
  t.is((await dev().getManifest(REPO, signedDigest)).status, 200);
});
