// podman (containers/image and containers/storage, vfs, all state in a temporary directory) against
// the real registry: push an imported image and one pulled from an OCI layout, remove them, pull
// them back, and check the image id, the digest, RepoDigests and the files in the image.
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { createPodman, podmanImport, podmanInspect, podmanReadFiles, type Podman } from '../helpers/containers-tools.js';
import { testWithCommands } from '../helpers/env.js';
import { OCI_MANIFEST, sha256, writeOciLayout } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeRootfsImage, randomFiles, type Files } from '../helpers/rootfs.js';

interface Context {
  registry: TestRegistry;
  podman: Podman;
  work: string;
}

const test = testWithCommands<Context>('podman e2e', ['podman'], { root: true });
type T = ExecutionContext<Context>;

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

test.before(async (t) => {
  // Lower case only: `podman pull oci:DIR` names the image after DIR.
  t.context.work = path.join(os.tmpdir(), `signet-e2e-podman-${randomBytes(6).toString('hex')}`);
  await mkdir(t.context.work);
  t.context.registry = await startTestRegistry();
  t.context.podman = await createPodman();
});

test.after.always(async (t) => {
  await t.context.podman?.close();
  await t.context.registry?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

async function registryManifest(t: T, repository: string, reference: string): Promise<{ digest: string | null; body: Buffer }> {
  const response = await fetch(`${t.context.registry.url}/v2/${repository}/manifests/${reference}`, {
    headers: { Accept: [OCI_MANIFEST, DOCKER_MANIFEST].join(', ') },
  });
  t.is(response.status, 200, `GET manifest ${repository}:${reference}`);
  return { digest: response.headers.get('Docker-Content-Digest'), body: Buffer.from(await response.arrayBuffer()) };
}

async function assertFiles(t: T, reference: string, expected: Files): Promise<void> {
  const actual = await podmanReadFiles(t.context.podman, reference, Object.keys(expected));
  for (const [name, content] of Object.entries(expected)) {
    t.true(actual[name]?.equals(content), `${name} in ${reference} does not hold the bytes put in`);
  }
}

test('import, push, rmi, pull: same image id, digest and file bytes', async (t) => {
  const { podman, registry, work } = t.context;
  const files = randomFiles('podman', 2);
  const imageId = await podmanImport(podman, files, work, 'signet-e2e/imported:v1');
  const reference = `${registry.host}/e2e/podman:v1`;
  await podman.podman(['tag', 'signet-e2e/imported:v1', reference]);

  const pushed = await podman.push(reference, `docker://${reference}`);
  const served = await registryManifest(t, 'e2e/podman', 'v1');
  t.is(served.digest, pushed, 'the registry serves another digest than podman pushed');
  t.is(sha256(served.body), pushed, 'the manifest bytes do not hash to the digest podman pushed');
  const manifest = JSON.parse(served.body.toString('utf8')) as { config: { digest: string } };
  t.is(manifest.config.digest, `sha256:${imageId}`, 'the pushed config is not the image podman imported');

  await podman.podman(['rmi', reference, 'signet-e2e/imported:v1']);
  await podman.podmanFails(['image', 'exists', imageId]);

  t.is(await podman.pull(reference), imageId);
  const image = await podmanInspect(podman, reference);
  t.is(image.Id, imageId);
  t.is(image.Digest, pushed);
  t.true(image.RepoDigests.includes(`${registry.host}/e2e/podman@${pushed}`), JSON.stringify(image.RepoDigests));
  await assertFiles(t, reference, files);
});

test('an image pulled from an OCI layout, pushed as Docker schema 2 to team/sub/podman, pulled by digest', async (t) => {
  const { podman, registry, work } = t.context;
  const layers = [randomFiles('lower', 2), randomFiles('upper', 1)];
  const built = makeRootfsImage(layers);
  const layout = path.join(work, 'layout');
  await writeOciLayout(layout, [built], built.manifest, 'v1');
  const imageId = await podman.pull(`oci:${layout}:v1`);
  t.is(`sha256:${imageId}`, built.config.digest);

  const reference = `${registry.host}/team/sub/podman:v2s2`;
  await podman.podman(['tag', imageId, reference]);
  const pushed = await podman.push(reference, `docker://${reference}`, ['--format', 'v2s2']);
  const served = await registryManifest(t, 'team/sub/podman', 'v2s2');
  t.is(served.digest, pushed);
  const manifest = JSON.parse(served.body.toString('utf8')) as { mediaType: string; config: { digest: string }; layers: unknown[] };
  t.is(manifest.mediaType, DOCKER_MANIFEST, 'podman did not push the format asked for');
  t.is(manifest.config.digest, built.config.digest);
  t.is(manifest.layers.length, 2);

  await podman.podman(['rmi', '--force', imageId]);
  const byDigest = `${registry.host}/team/sub/podman@${pushed}`;
  t.is(await podman.pull(byDigest), imageId);
  const image = await podmanInspect(podman, byDigest);
  t.is(image.Digest, pushed);
  await assertFiles(t, byDigest, { ...layers[0], ...layers[1] });
});

test('pulling what was never pushed fails with manifest unknown or name unknown', async (t) => {
  const { podman, registry, work } = t.context;
  await podmanImport(podman, randomFiles('missing', 1), work, 'signet-e2e/missing:v1');
  const pushedTag = `${registry.host}/e2e/podman-missing:v1`;
  await podman.podman(['tag', 'signet-e2e/missing:v1', pushedTag]);
  await podman.push(pushedTag, `docker://${pushedTag}`);

  const noTag = await podman.podmanFails(['pull', '--tls-verify=false', `${registry.host}/e2e/podman-missing:never-pushed`]);
  t.regex(noTag.stderr, /manifest unknown/i, noTag.message);
  const noRepository = await podman.podmanFails(['pull', '--tls-verify=false', `${registry.host}/e2e/never-pushed:v1`]);
  t.regex(noRepository.stderr, /name unknown/i, noRepository.message);
});
