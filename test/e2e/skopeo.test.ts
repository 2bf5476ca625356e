// skopeo (containers/image) against the real registry: push OCI layouts into nested repositories,
// copy them back byte for byte, multi-platform indexes with --all, inspect, list-tags, delete.
// The round trip and delete also run on the real PostgreSQL server.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { createSkopeo, type Skopeo } from '../helpers/containers-tools.js';
import { testWithCommands } from '../helpers/env.js';
import { layoutTop, readLayoutBlob } from '../helpers/layout-reader.js';
import { makeImage, makeIndex, sha256, writeOciLayout, type Blob, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

interface Context {
  registry: TestRegistry;
  skopeo: Skopeo;
  work: string;
}

const test = testWithCommands<Context>('skopeo e2e', ['skopeo']);
// The round trip and delete again, with metadata on the real PostgreSQL server.
const pgTest = testWithCommands<Context>('skopeo e2e on PostgreSQL', ['skopeo'], { postgres: true });
type T = ExecutionContext<Context>;

const HTTP = ['--src-tls-verify=false', '--dest-tls-verify=false'];

test.before(async (t) => {
  t.context.registry = await startTestRegistry();
  t.context.skopeo = await createSkopeo();
  t.context.work = await mkdtemp(path.join(os.tmpdir(), 'signet-e2e-skopeo-'));
});

// One registry on the real PostgreSQL server, started by the first test that needs it.
let postgresRegistry: Promise<TestRegistry> | undefined;
const onPostgres = (): Promise<TestRegistry> => (postgresRegistry ??= startTestRegistry({ database: 'postgres' }));

test.after.always(async (t) => {
  await t.context.skopeo?.close();
  await t.context.registry?.close();
  await (await postgresRegistry?.catch(() => undefined))?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

let dirs = 0;
const workDir = (t: T, label: string): string => path.join(t.context.work, `${label}-${++dirs}`);

async function writeLayout(t: T, images: Image[], top: Blob, tag: string): Promise<string> {
  const dir = workDir(t, 'src');
  await writeOciLayout(dir, images, top, tag);
  return dir;
}

/** skopeo copy from an OCI layout into the registry; returns the digest skopeo reports. */
async function push(t: T, layout: string, tag: string, destination: string, extra: string[] = []): Promise<string> {
  const digestFile = workDir(t, 'digest');
  await t.context.skopeo.skopeo(['copy', ...HTTP, '--digestfile', digestFile, ...extra, `oci:${layout}:${tag}`, destination]);
  return (await readFile(digestFile, 'utf8')).trim();
}

/** skopeo copy from the registry into a new OCI layout; returns the layout directory. */
async function pull(t: T, source: string, tag: string, extra: string[] = []): Promise<string> {
  const dir = workDir(t, 'dst');
  await t.context.skopeo.skopeo(['copy', ...HTTP, ...extra, source, `oci:${dir}:${tag}`]);
  return dir;
}

async function assertSameBlob(t: T, layout: string, expected: Blob, what: string): Promise<void> {
  const data = await readLayoutBlob(layout, expected.digest);
  t.true(data.equals(expected.data), `${what} ${expected.digest} came back with different bytes`);
}

async function assertImageCameBack(t: T, layout: string, image: Image, label: string): Promise<void> {
  await assertSameBlob(t, layout, image.manifest, `${label} manifest`);
  await assertSameBlob(t, layout, image.config, `${label} config`);
  for (const [i, layer] of image.layers.entries()) await assertSameBlob(t, layout, layer, `${label} layer ${i}`);
}

async function roundTrip(t: T, registry: TestRegistry): Promise<void> {
  const image = makeImage({ layers: 3, layerBytes: 256 * 1024 });
  const source = await writeLayout(t, [image], image.manifest, 'v1');
  const reference = `docker://${registry.host}/team/sub/app:v1`;

  const pushed = await push(t, source, 'v1', reference);
  t.is(pushed, image.manifest.digest, 'skopeo reports another manifest digest than the one pushed');

  const copy = await pull(t, reference, 'v1');
  const top = await layoutTop(copy, 'v1');
  t.is(top.digest, image.manifest.digest);
  t.is(top.size, image.manifest.size);
  await assertImageCameBack(t, copy, image, 'pulled');

  const byDigest = await pull(t, `docker://${registry.host}/team/sub/app@${image.manifest.digest}`, 'bydigest');
  t.is((await layoutTop(byDigest, 'bydigest')).digest, image.manifest.digest);
}

async function deleteByTag(t: T, registry: TestRegistry): Promise<void> {
  const { skopeo, skopeoFails } = t.context.skopeo;
  const doomed = makeImage({ layers: 2 });
  const kept = makeImage({ layers: 1 });
  const repository = `${registry.host}/team/sub/deleted`;
  const doomedLayout = await writeLayout(t, [doomed], doomed.manifest, 'v1');
  const keptLayout = await writeLayout(t, [kept], kept.manifest, 'v2');
  await push(t, doomedLayout, 'v1', `docker://${repository}:v1`);
  await push(t, doomedLayout, 'v1', `docker://${repository}:v1-alias`);
  await push(t, keptLayout, 'v2', `docker://${repository}:v2`);
  t.deepEqual(await listTags(t, repository), ['v1', 'v1-alias', 'v2']);

  // skopeo resolves the tag and deletes the manifest by digest: every tag naming it goes too.
  await skopeo(['delete', '--tls-verify=false', `docker://${repository}:v1`]);
  t.deepEqual(await listTags(t, repository), ['v2'], 'tags of the deleted manifest are still listed');

  const byTag = await skopeoFails(['inspect', '--tls-verify=false', `docker://${repository}:v1`]);
  t.regex(byTag.stderr, /manifest unknown/i, byTag.message);
  const byDigest = await skopeoFails(['copy', ...HTTP, `docker://${repository}@${doomed.manifest.digest}`, `oci:${workDir(t, 'gone')}:x`]);
  t.regex(byDigest.stderr, /manifest unknown/i, byDigest.message);

  // The other image in the repository is untouched.
  const survivor = await pull(t, `docker://${repository}:v2`, 'v2');
  await assertImageCameBack(t, survivor, kept, 'surviving');
}

async function listTags(t: T, repository: string): Promise<string[]> {
  const { stdout } = await t.context.skopeo.skopeo(['list-tags', '--tls-verify=false', `docker://${repository}`]);
  const listed = JSON.parse(stdout) as { Repository: string; Tags: string[] };
  t.is(listed.Repository, repository);
  return [...listed.Tags].sort();
}

test('copies a three-layer image into team/sub/app and back byte for byte', async (t) => {
  await roundTrip(t, t.context.registry);
});

test('copies a multi-platform index with --all and back, both platforms intact', async (t) => {
  const { registry } = t.context;
  const { skopeo } = t.context.skopeo;
  const amd64 = makeImage({ layers: 2, architecture: 'amd64' });
  const arm64 = makeImage({ layers: 3, architecture: 'arm64' });
  const index = makeIndex([amd64, arm64]);
  const source = await writeLayout(t, [amd64, arm64], index, 'multi');
  const reference = `docker://${registry.host}/team/sub/multi:v1`;

  const pushed = await push(t, source, 'multi', reference, ['--all']);
  t.is(pushed, index.digest);

  const copy = await pull(t, reference, 'multi', ['--all']);
  const top = await layoutTop(copy, 'multi');
  t.is(top.digest, index.digest);
  await assertSameBlob(t, copy, index, 'index');
  await assertImageCameBack(t, copy, amd64, 'amd64');
  await assertImageCameBack(t, copy, arm64, 'arm64');

  // Without --all a client gets the one platform it asks for.
  const armOnly = await pull(t, reference, 'arm', ['--override-arch', 'arm64', '--override-os', 'linux']);
  t.is((await layoutTop(armOnly, 'arm')).digest, arm64.manifest.digest);
  await assertImageCameBack(t, armOnly, arm64, 'arm64 alone');

  const { stdout: raw } = await skopeo(['inspect', '--tls-verify=false', '--raw', reference]);
  t.is(sha256(raw), index.digest, 'inspect --raw does not return the pushed index bytes');
});

test('inspect reports the manifest digest, every tag and the layers', async (t) => {
  const { registry } = t.context;
  const { skopeo } = t.context.skopeo;
  const image = makeImage({ layers: 2 });
  const source = await writeLayout(t, [image], image.manifest, 'v1');
  const repository = `${registry.host}/team/sub/inspected`;
  for (const tag of ['v1', 'v2', 'latest']) await push(t, source, 'v1', `docker://${repository}:${tag}`);

  const { stdout } = await skopeo(['inspect', '--tls-verify=false', `docker://${repository}:v2`]);
  const inspected = JSON.parse(stdout) as { Name: string; Digest: string; RepoTags: string[]; Layers: string[]; Architecture: string };
  t.is(inspected.Name, repository);
  t.is(inspected.Digest, image.manifest.digest);
  t.deepEqual([...inspected.RepoTags].sort(), ['latest', 'v1', 'v2']);
  t.deepEqual(
    inspected.Layers,
    image.layers.map((l) => l.digest),
  );
  t.is(inspected.Architecture, 'amd64');
});

test('list-tags lists every tag of a nested repository and nothing from its neighbours', async (t) => {
  const { registry } = t.context;
  const image = makeImage({ layers: 1 });
  const other = makeImage({ layers: 1 });
  const source = await writeLayout(t, [image], image.manifest, 'v1');
  const otherSource = await writeLayout(t, [other], other.manifest, 'v1');
  const tags = ['1.0', '1.1', '2.0-rc.1', 'latest'];
  for (const tag of tags) await push(t, source, 'v1', `docker://${registry.host}/team/sub/listed:${tag}`);
  await push(t, otherSource, 'v1', `docker://${registry.host}/team/sub/listed/child:elsewhere`);

  t.deepEqual(await listTags(t, `${registry.host}/team/sub/listed`), tags);
  t.deepEqual(await listTags(t, `${registry.host}/team/sub/listed/child`), ['elsewhere']);
});

test('delete removes the manifest: its tags are gone and pulling it by digest fails', async (t) => {
  await deleteByTag(t, t.context.registry);
});

pgTest('on PostgreSQL: copies a three-layer image into team/sub/app and back byte for byte', async (t) => {
  await roundTrip(t, await onPostgres());
});

pgTest('on PostgreSQL: delete removes the manifest and its tags', async (t) => {
  await deleteByTag(t, await onPostgres());
});
