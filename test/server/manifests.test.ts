import { randomBytes } from 'node:crypto';
import test from 'ava';
import { createClient, errorCode, jsonBlob } from '../helpers/oci-client.js';
import { blobOf, makeImage, makeIndex, OCI_INDEX, OCI_MANIFEST, sha256 } from '../helpers/oci-layout.js';
import { testWithCommands } from '../helpers/env.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

// The manifest behaviour is run on both metadata back ends: embedded PGlite and a real PostgreSQL.
for (const database of ['pglite', 'postgres'] as const) {
  let registry: TestRegistry | undefined;
  let client: ReturnType<typeof createClient>;
  // PostgreSQL's half is skipped with a message when no server answers (failing under SIGNET_TEST_REQUIRE_ALL=1).
  const it = database === 'postgres' ? testWithCommands('manifests on PostgreSQL', [], { postgres: true }) : test;

  it.before(async () => {
    registry = await startTestRegistry({ database });
    client = createClient(registry.url);
  });
  it.after.always(() => registry?.close());

  const repo = (t: { title: string }): string => `${database}/m${sha256(t.title).slice(7, 17)}/app`;

  it(`[${database}] push by tag, pull by tag and digest, byte-exact with headers`, async (t) => {
    const name = repo(t);
    const image = makeImage();
    const put = await client.pushImage(name, image, 'v1');
    t.is(put.status, 201, await put.clone().text());
    t.is(put.headers.get('docker-content-digest'), image.manifest.digest);
    t.is(put.headers.get('location'), `/v2/${name}/manifests/${image.manifest.digest}`);

    for (const reference of ['v1', image.manifest.digest]) {
      const got = await client.getManifest(name, reference);
      t.is(got.status, 200);
      t.is(got.headers.get('content-type'), OCI_MANIFEST);
      t.is(got.headers.get('docker-content-digest'), image.manifest.digest);
      t.is(got.headers.get('content-length'), String(image.manifest.size));
      t.deepEqual(Buffer.from(await got.arrayBuffer()), image.manifest.data);
      const head = await client.request(`/v2/${name}/manifests/${reference}`, { method: 'HEAD' });
      t.is(head.status, 200);
      t.is(head.headers.get('content-length'), String(image.manifest.size));
      t.is(head.headers.get('docker-content-digest'), image.manifest.digest);
      t.is(await head.text(), '');
    }
  });

  it(`[${database}] whitespace and key order are kept: the digest is of the pushed bytes`, async (t) => {
    const name = repo(t);
    const image = makeImage({ layers: 1 });
    for (const b of [image.config, ...image.layers]) await client.pushBlob(name, b);
    const pretty = blobOf(Buffer.from(JSON.stringify(JSON.parse(image.manifest.data.toString()), null, 3) + '\n'), OCI_MANIFEST);
    t.is((await client.pushManifest(name, 'pretty', pretty)).status, 201);
    const got = await client.getManifest(name, 'pretty');
    t.deepEqual(Buffer.from(await got.arrayBuffer()), pretty.data);
    t.is(got.headers.get('docker-content-digest'), pretty.digest);
  });

  it(`[${database}] Docker schema 2 manifests`, async (t) => {
    const name = repo(t);
    const config = blobOf(Buffer.from('{"architecture":"amd64","os":"linux"}'), DOCKER_CONFIG);
    const layer = blobOf(randomBytes(100), DOCKER_LAYER);
    await client.pushBlob(name, config);
    await client.pushBlob(name, layer);
    const manifest = jsonBlob(
      {
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: { mediaType: DOCKER_CONFIG, digest: config.digest, size: config.size },
        layers: [{ mediaType: DOCKER_LAYER, digest: layer.digest, size: layer.size }],
      },
      DOCKER_MANIFEST,
    );
    t.is((await client.pushManifest(name, 'latest', manifest)).status, 201);
    const got = await client.getManifest(name, 'latest');
    t.is(got.headers.get('content-type'), DOCKER_MANIFEST);
  });

  it(`[${database}] a manifest naming a blob not in the repository is MANIFEST_BLOB_UNKNOWN`, async (t) => {
    const name = repo(t);
    const image = makeImage();
    await client.pushBlob(name, image.config);
    const res = await client.pushManifest(name, 'v1', image.manifest);
    t.is(res.status, 400);
    t.is(await errorCode(res), 'MANIFEST_BLOB_UNKNOWN');
    // The blob exists in another repository: still unknown here.
    await client.pushImage(`${name}-other`, image, 'v1');
    const again = await client.pushManifest(name, 'v1', image.manifest);
    t.is(again.status, 400);
    t.is((await client.getManifest(name, 'v1')).status, 404);
  });

  it(`[${database}] a descriptor with the wrong size is MANIFEST_INVALID`, async (t) => {
    const name = repo(t);
    const image = makeImage({ layers: 1 });
    for (const b of [image.config, ...image.layers]) await client.pushBlob(name, b);
    const parsed = JSON.parse(image.manifest.data.toString()) as { layers: { size: number }[] };
    parsed.layers[0]!.size += 1;
    const res = await client.pushManifest(name, 'v1', jsonBlob(parsed, OCI_MANIFEST));
    t.is(res.status, 400);
    t.is(await errorCode(res), 'MANIFEST_INVALID');
  });

  it(`[${database}] malformed manifests are MANIFEST_INVALID and store nothing`, async (t) => {
    const name = repo(t);
    const bodies: [string, string][] = [
      ['not json', OCI_MANIFEST],
      ['[]', OCI_MANIFEST],
      ['{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}', 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
      ['{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}', OCI_MANIFEST],
      ['{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}', OCI_MANIFEST],
      ['{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}', OCI_MANIFEST],
      ['{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}', 'text/plain'],
    ];
    for (const [body, type] of bodies) {
      const res = await client.request(`/v2/${name}/manifests/bad`, { method: 'PUT', body, headers: { 'Content-Type': type } });
      t.is(res.status, 400, body);
      t.true(['MANIFEST_INVALID', 'DIGEST_INVALID'].includes((await errorCode(res)) ?? ''), body);
    }
    t.is((await client.getManifest(name, 'bad')).status, 404);
  });

  it(`[${database}] ambiguous documents (CVE-2021-41190) are refused with MANIFEST_INVALID, even with null fields`, async (t) => {
    const name = repo(t);
    const image = makeImage({ layers: 1 });
    t.is((await client.pushImage(name, image, 'v1')).status, 201);
    const child = { mediaType: OCI_MANIFEST, digest: image.manifest.digest, size: image.manifest.size };
    const config = { mediaType: image.config.mediaType, digest: image.config.digest, size: image.config.size };
    const layers = image.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
    const ambiguous: [string, Record<string, unknown>][] = [
      [OCI_INDEX, { manifests: [child], config, layers }],
      [OCI_INDEX, { manifests: [child], layers }],
      [OCI_INDEX, { manifests: [child], config: null }],
      ['application/vnd.docker.distribution.manifest.list.v2+json', { manifests: [child], layers }],
      [OCI_MANIFEST, { config, layers, manifests: [child] }],
      [OCI_MANIFEST, { config, layers, manifests: null }],
      [DOCKER_MANIFEST, { config, layers, fsLayers: [] }],
      [OCI_MANIFEST, { config, layers, history: [] }],
    ];
    for (const [mediaType, fields] of ambiguous) {
      const body = JSON.stringify({ schemaVersion: 2, mediaType, ...fields });
      const res = await client.request(`/v2/${name}/manifests/ambiguous`, { method: 'PUT', body, headers: { 'Content-Type': mediaType } });
      t.is(res.status, 400, body);
      const error = ((await res.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
      t.is(error.code, 'MANIFEST_INVALID', body);
      t.regex(error.message, /ambiguous manifest/);
    }
    t.is((await client.getManifest(name, 'ambiguous')).status, 404, 'nothing was stored');
  });

  it(`[${database}] a manifest over 4 MiB is refused with 413`, async (t) => {
    const name = repo(t);
    const big = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], annotations: { x: 'a'.repeat(4 * 1024 * 1024) } });
    const res = await client.request(`/v2/${name}/manifests/big`, { method: 'PUT', body: big, headers: { 'Content-Type': OCI_INDEX } });
    t.is(res.status, 413);
    t.is(await errorCode(res), 'SIZE_INVALID');
  });

  it(`[${database}] PUT by digest must match the content`, async (t) => {
    const name = repo(t);
    const image = makeImage();
    const wrong = await client.pushImage(name, image, sha256('something else'));
    t.is(wrong.status, 400);
    t.is(await errorCode(wrong), 'DIGEST_INVALID');
    const right = await client.pushManifest(name, image.manifest.digest, image.manifest);
    t.is(right.status, 201);
  });

  it(`[${database}] a manifest an index lists, or a blob a manifest uses, is not deleted by digest until they are`, async (t) => {
    const name = repo(t);
    const a = makeImage({ layers: 1 });
    const b = makeImage({ architecture: 'arm64', layers: 1 });
    const index = makeIndex([a, b]);
    await client.pushImage(name, a);
    await client.pushImage(name, b);
    t.is((await client.pushManifest(name, 'multi', index)).status, 201);
    const del = (path: string) => client.request(`/v2/${name}/${path}`, { method: 'DELETE' });

    // As GitLab's registry answers it: 409 MANIFEST_REFERENCED naming the index; a would be served missing.
    const child = await del(`manifests/${a.manifest.digest}`);
    t.is(child.status, 409);
    const body = (await child.json()) as { errors: { code: string; detail: { referencedBy: string[] } }[] };
    t.is(body.errors[0]?.code, 'MANIFEST_REFERENCED');
    t.deepEqual(body.errors[0]?.detail.referencedBy, [index.digest]);
    t.is((await client.getManifest(name, a.manifest.digest)).status, 200);
    // A layer the manifest uses: 409 BLOB_REFERENCED, the layer still pulls from this repository.
    const layer = a.layers[0]!;
    const used = await del(`blobs/${layer.digest}`);
    t.is(used.status, 409);
    t.is(await errorCode(used), 'BLOB_REFERENCED');
    t.is((await client.request(`/v2/${name}/blobs/${layer.digest}`)).status, 200);

    // The index first, then what it listed, then what that used.
    t.is((await del(`manifests/${index.digest}`)).status, 202);
    t.is((await del(`manifests/${a.manifest.digest}`)).status, 202);
    t.is((await del(`blobs/${layer.digest}`)).status, 202);
    t.is((await client.getManifest(name, 'multi')).status, 404);
    t.is((await client.getManifest(name, b.manifest.digest)).status, 200, 'b was not asked to go');
  });

  it(`[${database}] an index needs its manifests in the repository; Accept decides who gets it by tag`, async (t) => {
    const name = repo(t);
    const a = makeImage();
    const b = makeImage({ architecture: 'arm64' });
    const index = makeIndex([a, b]);
    await client.pushImage(name, a);
    const early = await client.pushManifest(name, 'multi', index);
    t.is(early.status, 400);
    t.is(await errorCode(early), 'MANIFEST_BLOB_UNKNOWN');
    await client.pushImage(name, b);
    t.is((await client.pushManifest(name, 'multi', index)).status, 201);

    const got = await client.getManifest(name, 'multi');
    t.is(got.headers.get('content-type'), OCI_INDEX);
    t.is(got.headers.get('docker-content-digest'), index.digest);
    // A client that only reads image manifests is not handed an index for a tag.
    const narrow = await client.getManifest(name, 'multi', OCI_MANIFEST);
    t.is(narrow.status, 404);
    t.is(await errorCode(narrow), 'MANIFEST_UNKNOWN');
    // Several Accept headers (as containers/image sends them) are all honoured.
    const several = await fetch(`${registry!.url}/v2/${name}/manifests/multi`, {
      headers: [
        ['Accept', OCI_MANIFEST],
        ['Accept', OCI_INDEX],
      ],
    });
    t.is(several.status, 200);
    t.is((await client.getManifest(name, index.digest, OCI_MANIFEST)).status, 200);
  });

  it(`[${database}] subject: accepted even when missing, answered with OCI-Subject`, async (t) => {
    const name = repo(t);
    const empty = blobOf(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
    await client.pushBlob(name, empty);
    const subject = sha256('not pushed yet');
    const artifact = jsonBlob(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.sbom',
        config: { mediaType: empty.mediaType, digest: empty.digest, size: empty.size },
        layers: [],
        subject: { mediaType: OCI_MANIFEST, digest: subject, size: 123 },
      },
      OCI_MANIFEST,
    );
    const res = await client.pushManifest(name, artifact.digest, artifact);
    t.is(res.status, 201);
    t.is(res.headers.get('oci-subject'), subject);
  });

  it(`[${database}] retagging moves the tag; DELETE by tag removes only the tag`, async (t) => {
    const name = repo(t);
    const one = makeImage();
    const two = makeImage();
    await client.pushImage(name, one, 'latest');
    await client.pushImage(name, two, 'latest');
    const got = await client.getManifest(name, 'latest');
    t.is(got.headers.get('docker-content-digest'), two.manifest.digest);

    const del = await client.request(`/v2/${name}/manifests/latest`, { method: 'DELETE' });
    t.is(del.status, 202);
    t.is((await client.getManifest(name, 'latest')).status, 404);
    t.is((await client.getManifest(name, two.manifest.digest)).status, 200);
  });

  it(`[${database}] DELETE by digest removes the manifest and its tags`, async (t) => {
    const name = repo(t);
    const image = makeImage();
    await client.pushImage(name, image, 'v1');
    await client.pushManifest(name, 'v2', image.manifest);
    const del = await client.request(`/v2/${name}/manifests/${image.manifest.digest}`, { method: 'DELETE' });
    t.is(del.status, 202);
    for (const ref of ['v1', 'v2', image.manifest.digest]) {
      const res = await client.getManifest(name, ref);
      t.is(res.status, 404, ref);
      t.is(await errorCode(res), 'MANIFEST_UNKNOWN');
    }
    const again = await client.request(`/v2/${name}/manifests/${image.manifest.digest}`, { method: 'DELETE' });
    t.is(again.status, 404);
    const tags = (await (await client.request(`/v2/${name}/tags/list`)).json()) as { tags: string[] };
    t.deepEqual(tags.tags, []);
  });

  it(`[${database}] unknown repository is NAME_UNKNOWN; unknown tag is MANIFEST_UNKNOWN`, async (t) => {
    const name = repo(t);
    const none = await client.getManifest(name, 'latest');
    t.is(none.status, 404);
    t.is(await errorCode(none), 'NAME_UNKNOWN');
    await client.pushImage(name, makeImage(), 'v1');
    const miss = await client.getManifest(name, 'v2');
    t.is(await errorCode(miss), 'MANIFEST_UNKNOWN');
  });
}
