import test from 'ava';
import { createClient, errorCode, jsonBlob } from '../helpers/oci-client.js';
import { blobOf, makeImage, OCI_INDEX, OCI_MANIFEST, sha256 } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let client: ReturnType<typeof createClient>;
test.before(async () => {
  registry = await startTestRegistry();
  client = createClient(registry.url);
});
test.after.always(() => registry?.close());

const repo = (t: { title: string }): string => `lists/${sha256(t.title).slice(7, 17)}`;

async function tagged(name: string, tags: string[]): Promise<void> {
  const image = makeImage({ layers: 1 });
  await client.pushImage(name, image);
  for (const tag of tags) await client.pushManifest(name, tag, image.manifest);
}

test('tags/list in lexical order with n/last pagination and Link', async (t) => {
  const name = repo(t);
  await tagged(name, ['b', 'a', 'C', '10', '9', 'a-1']);
  const all = (await (await client.request(`/v2/${name}/tags/list`)).json()) as { name: string; tags: string[] };
  t.is(all.name, name);
  t.deepEqual(all.tags, ['10', '9', 'C', 'a', 'a-1', 'b']);

  const first = await client.request(`/v2/${name}/tags/list?n=2`);
  t.deepEqual(((await first.json()) as { tags: string[] }).tags, ['10', '9']);
  t.is(first.headers.get('link'), `</v2/${name}/tags/list?n=2&last=9>; rel="next"`);

  const next = await client.request(`/v2/${name}/tags/list?n=2&last=9`);
  t.deepEqual(((await next.json()) as { tags: string[] }).tags, ['C', 'a']);
  const tail = await client.request(`/v2/${name}/tags/list?n=2&last=a`);
  t.deepEqual(((await tail.json()) as { tags: string[] }).tags, ['a-1', 'b']);
  t.is(tail.headers.get('link'), null);

  const none = await client.request(`/v2/${name}/tags/list?n=0`);
  t.deepEqual(((await none.json()) as { tags: string[] }).tags, []);
  t.is(none.headers.get('link'), null);
});

test('tags/list shows a tag pushed or deleted a moment after the last listing', async (t) => {
  const name = repo(t);
  await tagged(name, ['v1']);
  const list = async (): Promise<{ type: string | null; body: { name: string; tags: string[] } }> => {
    const res = await client.request(`/v2/${name}/tags/list`);
    t.is(res.status, 200);
    return { type: res.headers.get('content-type'), body: (await res.json()) as { name: string; tags: string[] } };
  };
  // Listed twice: the second answer may come from what the first rendered.
  t.deepEqual((await list()).body, { name, tags: ['v1'] });
  t.deepEqual(await list(), { type: 'application/json; charset=utf-8', body: { name, tags: ['v1'] } });
  await tagged(name, ['v2']);
  t.deepEqual((await list()).body.tags, ['v1', 'v2']);
  const deleted = await client.request(`/v2/${name}/manifests/v1`, { method: 'DELETE' });
  t.is(deleted.status, 202);
  t.deepEqual((await list()).body.tags, ['v2']);
});

test('tags/list of an unknown repository is NAME_UNKNOWN; a bad n is PAGINATION_NUMBER_INVALID', async (t) => {
  const res = await client.request(`/v2/${repo(t)}/nothing/tags/list`);
  t.is(res.status, 404);
  t.is(await errorCode(res), 'NAME_UNKNOWN');
  await tagged(repo(t), ['x']);
  const bad = await client.request(`/v2/${repo(t)}/tags/list?n=-1`);
  t.is(bad.status, 400);
  t.is(await errorCode(bad), 'PAGINATION_NUMBER_INVALID');
});

test('_catalog lists repositories with manifests, paginated', async (t) => {
  const names = ['cat/zz', 'cat/aa/bb', 'cat/mm'];
  for (const name of names) await tagged(name, ['v1']);
  // A repository with only an upload session or a blob is not listed.
  await client.pushBlob('cat/blobonly', blobOf(Buffer.from('x'), 'application/octet-stream'));
  const all = (await (await client.request('/v2/_catalog?n=1000')).json()) as { repositories: string[] };
  const ours = all.repositories.filter((r) => r.startsWith('cat/'));
  t.deepEqual(ours, ['cat/aa/bb', 'cat/mm', 'cat/zz']);

  const page = await client.request('/v2/_catalog?n=1&last=cat/aa/bb');
  t.deepEqual(((await page.json()) as { repositories: string[] }).repositories, ['cat/mm']);
  t.is(page.headers.get('link'), '</v2/_catalog?n=1&last=cat%2Fmm>; rel="next"');
});

/**
 * Pushes an image and an empty config blob to `name`; `referrer` builds a manifest of no layers
 * whose subject is that image, with the config (the empty one unless given) and fields given.
 */
async function subjectOfReferrers(name: string) {
  const image = makeImage();
  await client.pushImage(name, image, 'v1');
  const empty = blobOf(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  await client.pushBlob(name, empty);
  const subject = { mediaType: OCI_MANIFEST, digest: image.manifest.digest, size: image.manifest.size };
  const referrer = (fields: Record<string, unknown>, config: { mediaType: string; digest: string; size: number } = empty) =>
    jsonBlob(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
        layers: [],
        subject,
        ...fields,
      },
      OCI_MANIFEST,
    );
  return { image, referrer };
}

test('referrers: an index of manifests whose subject is the digest, filterable by artifactType', async (t) => {
  const name = repo(t);
  const { image, referrer } = await subjectOfReferrers(name);
  const sbom = referrer({ artifactType: 'application/vnd.example.sbom', annotations: { 'org.example.kind': 'sbom' } });
  // No artifactType: the config media type stands in for it.
  const sigConfig = blobOf(Buffer.from('{"sig":1}'), 'application/vnd.example.signature.config');
  await client.pushBlob(name, sigConfig);
  const sig = referrer({}, sigConfig);
  t.is((await client.pushManifest(name, sbom.digest, sbom)).status, 201);
  t.is((await client.pushManifest(name, sig.digest, sig)).status, 201);

  const res = await client.request(`/v2/${name}/referrers/${image.manifest.digest}`);
  t.is(res.status, 200);
  t.is(res.headers.get('content-type'), OCI_INDEX);
  const index = (await res.json()) as { schemaVersion: number; mediaType: string; manifests: Record<string, unknown>[] };
  t.is(index.schemaVersion, 2);
  t.is(index.mediaType, OCI_INDEX);
  const byDigest = new Map(index.manifests.map((m) => [m.digest, m]));
  t.deepEqual(byDigest.get(sbom.digest), {
    mediaType: OCI_MANIFEST,
    digest: sbom.digest,
    size: sbom.size,
    artifactType: 'application/vnd.example.sbom',
    annotations: { 'org.example.kind': 'sbom' },
  });
  t.is(byDigest.get(sig.digest)?.artifactType, 'application/vnd.example.signature.config');

  const filtered = await client.request(`/v2/${name}/referrers/${image.manifest.digest}?artifactType=application/vnd.example.sbom`);
  t.is(filtered.headers.get('oci-filters-applied'), 'artifactType');
  const only = (await filtered.json()) as { manifests: { digest: string }[] };
  t.deepEqual(
    only.manifests.map((m) => m.digest),
    [sbom.digest],
  );
});

test('referrers with megabytes of annotations come in pages a client follows by Link, every one listed once', async (t) => {
  // Unpaged, 35 referrers carrying 3.9 MB of annotations each ran the embedded database out of
  // memory on one anonymous GET, again after every restart (adversarial testing). Four of 1.5 MB
  // do not fit a 4 MiB page.
  const name = repo(t);
  const { image, referrer: referrerOf } = await subjectOfReferrers(name);
  const pushed: string[] = [];
  for (let i = 0; i < 4; i++) {
    const referrer = referrerOf({
      artifactType: i % 2 === 0 ? 'application/vnd.example.sbom' : 'application/vnd.example.other',
      annotations: { 'org.example.bulk': String(i).repeat(1_500_000) },
    });
    t.is((await client.pushManifest(name, referrer.digest, referrer)).status, 201);
    pushed.push(referrer.digest);
  }
  const walk = async (first: string): Promise<{ pages: number; digests: string[] }> => {
    let next: string | undefined = first;
    const digests: string[] = [];
    let pages = 0;
    while (next) {
      const res = await client.request(next);
      t.is(res.status, 200);
      const body = Buffer.from(await res.arrayBuffer());
      t.true(body.length < 5 * 1024 * 1024, `a page of ${body.length} bytes`);
      const index = JSON.parse(body.toString()) as { manifests: { digest: string; annotations: Record<string, string> }[] };
      for (const m of index.manifests) {
        t.is(m.annotations['org.example.bulk']?.length, 1_500_000, 'annotations whole');
        digests.push(m.digest);
      }
      pages += 1;
      next = /^<([^>]+)>; rel="next"$/.exec(res.headers.get('link') ?? '')?.[1];
    }
    return { pages, digests };
  };
  const all = await walk(`/v2/${name}/referrers/${image.manifest.digest}`);
  t.true(all.pages >= 2);
  t.deepEqual([...all.digests].sort(), [...pushed].sort());
  const sboms = await walk(`/v2/${name}/referrers/${image.manifest.digest}?artifactType=application/vnd.example.sbom`);
  t.deepEqual([...sboms.digests].sort(), [pushed[0]!, pushed[2]!].sort(), 'the filter holds on every page');
  const bad = await client.request(`/v2/${name}/referrers/${image.manifest.digest}?last=nonsense`);
  t.is(bad.status, 400);
  t.is(await errorCode(bad), 'DIGEST_INVALID');
});

test('referrers of a digest nothing refers to: an empty index, never 404; a bad digest is 400', async (t) => {
  const res = await client.request(`/v2/${repo(t)}/referrers/${sha256('nothing')}`);
  t.is(res.status, 200);
  t.deepEqual(((await res.json()) as { manifests: unknown[] }).manifests, []);
  const bad = await client.request(`/v2/${repo(t)}/referrers/sha256:xyz`);
  t.is(bad.status, 400);
  t.is(await errorCode(bad), 'DIGEST_INVALID');
});

test('artifact types and media types are what the image spec says they are: RFC 6838 names, refused otherwise', async (t) => {
  // A hundred referrers with a 3.9 MB artifactType each were stored, and one anonymous referrers
  // listing read them all back into memory: the server ran out of it (adversarial testing).
  const name = repo(t);
  const { image, referrer: referrerOf } = await subjectOfReferrers(name);
  const empty = blobOf(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  // The empty config under another media type, when one is given.
  const referrer = (artifactType: string, configType = empty.mediaType) =>
    referrerOf({ artifactType }, { ...empty, mediaType: configType });
  for (const [artifactType, configType] of [
    [`application/${'x'.repeat(3_900_000)}`, undefined],
    [`application/${'x'.repeat(128)}`, undefined],
    ['not a media type', undefined],
    ['application/vnd.example.sbom', `application/${'y'.repeat(200)}`],
  ] as const) {
    const res = await client.pushManifest(name, 'refused', referrer(artifactType, configType));
    t.is(res.status, 400);
    t.is(await errorCode(res), 'MANIFEST_INVALID');
  }
  // What real tools write goes in: parameters (sigstore's bundle type) and 127-character names.
  for (const artifactType of ['application/vnd.dev.sigstore.bundle+json;version=0.3', `application/${'z'.repeat(127)}`]) {
    t.is((await client.pushManifest(name, referrer(artifactType).digest, referrer(artifactType))).status, 201);
  }
  const listed = (await (await client.request(`/v2/${name}/referrers/${image.manifest.digest}`)).json()) as {
    manifests: { artifactType: string }[];
  };
  t.deepEqual(
    listed.manifests.map((m) => m.artifactType).sort(),
    ['application/vnd.dev.sigstore.bundle+json;version=0.3', `application/${'z'.repeat(127)}`].sort(),
  );
});
