// Names, tags and digests from the URL are validated before anything touches storage.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { createClient, errorCode } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { rawRequest, requestHead } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
test.before(async () => {
  registry = await startTestRegistry();
});
test.after.always(() => registry?.close());

const badNames = ['UPPER/case', 'a//b', 'a/', '-a/b', 'a..b', 'a%2F..%2Fb', 'a b', `${'a'.repeat(256)}`];

for (const name of badNames) {
  test(`repository name ${JSON.stringify(name.slice(0, 20))} is 400 NAME_INVALID`, async (t) => {
    const res = await fetch(`${registry.url}/v2/${name}/tags/list`);
    t.is(res.status, 400);
    t.is(await errorCode(res), 'NAME_INVALID');
  });
}

// fetch resolves dot segments before sending (a/../b becomes b), so these go over a bare socket,
// as a hostile client would send them: the server must not resolve them into another repository.
for (const name of ['a/../b', '..', 'a/./b']) {
  test(`a dot segment in a repository name (${name}) is 400 NAME_INVALID, never another repository`, async (t) => {
    const { port } = new URL(registry.url);
    const head = requestHead('GET', `/v2/${name}/tags/list`, { Host: `127.0.0.1:${port}`, Connection: 'close' });
    const { responses } = await rawRequest(Number(port), head, { timeoutMs: 5_000 });
    t.is(responses[0]?.status, 400);
    t.is((JSON.parse(responses[0]?.body.toString() ?? '{}') as { errors?: { code: string }[] }).errors?.[0]?.code, 'NAME_INVALID');
  });
}

test('nested names with the spec separators are accepted', async (t) => {
  const client = createClient(registry.url);
  for (const name of ['a/b/c', 'a-b/c_d/e.f', 'a__b/c--d']) {
    const res = await client.request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
    t.is(res.status, 202, name);
  }
});

test('invalid digests are 400 DIGEST_INVALID, not a path', async (t) => {
  for (const digest of ['sha256:abc', 'sha256:../../../etc/passwd', 'md5:d41d8cd98f00b204e9800998ecf8427e', 'sha256:' + 'A'.repeat(64)]) {
    const res = await fetch(`${registry.url}/v2/x/blobs/${encodeURIComponent(digest)}`);
    t.is(res.status, 400, digest);
    t.is(await errorCode(res), 'DIGEST_INVALID', digest);
  }
});

test('a reference that cannot be a tag names no manifest: 404 MANIFEST_UNKNOWN to GET, HEAD and DELETE; TAG_INVALID to PUT', async (t) => {
  // The distribution-spec conformance suite (v1.1.1) asks for `.INVALID_MANIFEST_NAME` in a
  // repository that exists and expects 404 for GET, HEAD and DELETE.
  const client = createClient(registry.url);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('names/app', image, 'v1')).status, 201);
  for (const reference of ['.INVALID_MANIFEST_NAME', '.hidden', '-dash', `a${'b'.repeat(128)}`]) {
    for (const method of ['GET', 'DELETE']) {
      const res = await client.request(`/v2/names/app/manifests/${reference}`, { method });
      t.is(res.status, 404, `${method} ${reference}`);
      t.is(await errorCode(res), 'MANIFEST_UNKNOWN', `${method} ${reference}`);
    }
    const head = await client.request(`/v2/names/app/manifests/${reference}`, { method: 'HEAD' });
    t.is(head.status, 404, `HEAD ${reference}`);
    const put = await client.pushManifest('names/app', reference, image.manifest);
    t.is(put.status, 400, `PUT ${reference}`);
    t.is(await errorCode(put), 'TAG_INVALID', `PUT ${reference}`);
  }
  t.is((await client.getManifest('names/app', 'v1')).status, 200, 'the image is untouched');
});

test('invalid upload ids are BLOB_UPLOAD_UNKNOWN and create nothing', async (t) => {
  const res = await fetch(`${registry.url}/v2/x/blobs/uploads/..%2F..%2Fescape`, { method: 'PATCH', body: 'x' });
  t.is(res.status, 404);
  t.is(await errorCode(res), 'BLOB_UPLOAD_UNKNOWN');
  const top: string[] = await readdir(path.join(registry.dataDir, 'storage')).catch(() => []);
  t.false(top.includes('escape'));
});
