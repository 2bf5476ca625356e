// Each client pulls what another pushed, through the real registry: docker → podman and skopeo,
// podman → docker, skopeo (from an OCI layout) → docker and podman. Digests, image ids and file
// bytes must agree across clients.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import {
  createPodman,
  createSkopeo,
  podmanImport,
  podmanInspect,
  podmanReadFiles,
  type Podman,
  type Skopeo,
} from '../helpers/containers-tools.js';
import { dockerImport, dockerInspect, dockerPull, dockerPush, dockerReadFiles, startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { testWithCommands } from '../helpers/env.js';
import { readDirCopy } from '../helpers/layout-reader.js';
import { sha256, writeOciLayout } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeRootfsImage, randomFiles, type Files } from '../helpers/rootfs.js';

interface Context {
  registry: TestRegistry;
  dockerd: Dockerd;
  podman: Podman;
  skopeo: Skopeo;
  work: string;
}

const test = testWithCommands<Context>('cross-client e2e', ['docker', 'dockerd', 'podman', 'skopeo'], {
  root: true,
});
type T = ExecutionContext<Context>;

test.before(async (t) => {
  // Lower case only: `podman pull oci:DIR` names the image after DIR.
  t.context.work = path.join(os.tmpdir(), `signet-e2e-cross-${randomBytes(6).toString('hex')}`);
  await mkdir(t.context.work);
  t.context.registry = await startTestRegistry();
  t.context.podman = await createPodman();
  t.context.skopeo = await createSkopeo();
  t.context.dockerd = await startDockerd();
});

test.after.always(async (t) => {
  await t.context.dockerd?.stop();
  await t.context.podman?.close();
  await t.context.skopeo?.close();
  await t.context.registry?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

const hex = (digest: string): string => digest.replace(/^sha256:/, '');

function assertSameFiles(t: T, actual: Files, expected: Files, what: string): void {
  t.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, content] of Object.entries(expected)) {
    t.true(actual[name]?.equals(content), `${what}: ${name} does not hold the bytes put in`);
  }
}

async function assertPodmanPulls(t: T, reference: string, digest: string, imageId: string, files: Files): Promise<void> {
  const { podman } = t.context;
  t.is(await podman.pull(reference), hex(imageId), 'podman pulled another image');
  const image = await podmanInspect(podman, reference);
  t.is(image.Digest, digest, 'podman sees another manifest digest');
  assertSameFiles(t, await podmanReadFiles(podman, reference, Object.keys(files)), files, `podman ${reference}`);
}

async function assertDockerPulls(t: T, reference: string, digest: string, imageId: string, files: Files): Promise<void> {
  const { dockerd, work } = t.context;
  t.is(await dockerPull(dockerd, reference), digest, 'docker reports another manifest digest');
  const image = await dockerInspect(dockerd, reference);
  t.is(image.Id, imageId, 'docker pulled another image');
  const repository = reference.slice(0, reference.lastIndexOf(':'));
  t.true(image.RepoDigests?.includes(`${repository}@${digest}`), JSON.stringify(image.RepoDigests));
  assertSameFiles(t, await dockerReadFiles(dockerd, reference, Object.keys(files), work), files, `docker ${reference}`);
}

test('docker push → podman pull and skopeo copy back', async (t) => {
  const { dockerd, registry, skopeo, work } = t.context;
  const files = randomFiles('from-docker', 2);
  const imageId = await dockerImport(dockerd, files, work, 'signet-e2e/from-docker:v1');
  const reference = `${registry.host}/cross/from-docker:v1`;
  await dockerd.docker(['tag', 'signet-e2e/from-docker:v1', reference]);
  const digest = await dockerPush(dockerd, reference);

  await assertPodmanPulls(t, reference, digest, imageId, files);

  // dir: keeps the manifest exactly as the registry serves it.
  const copy = path.join(work, 'from-docker-dir');
  await skopeo.skopeo(['copy', '--src-tls-verify=false', `docker://${reference}`, `dir:${copy}`]);
  const { manifest, blobs } = await readDirCopy(copy);
  t.is(sha256(manifest), digest, 'skopeo copied a manifest with another digest than docker pushed');
  t.true(blobs.has(imageId), 'the copied config is not the image docker pushed');
  t.is(blobs.size, 2);
});

test('podman push → docker pull', async (t) => {
  const { podman, registry, work } = t.context;
  const files = randomFiles('from-podman', 2);
  const imageId = await podmanImport(podman, files, work, 'signet-e2e/from-podman:v1');
  const reference = `${registry.host}/cross/from-podman:v1`;
  await podman.podman(['tag', 'signet-e2e/from-podman:v1', reference]);
  const digest = await podman.push(reference, `docker://${reference}`);

  await assertDockerPulls(t, reference, digest, `sha256:${imageId}`, files);
});

test('skopeo push from an OCI layout → docker pull and podman pull', async (t) => {
  const { registry, skopeo, work } = t.context;
  const layers = [randomFiles('skopeo-lower', 1), randomFiles('skopeo-upper', 2)];
  const image = makeRootfsImage(layers);
  const layout = path.join(work, 'from-skopeo-layout');
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  const reference = `${registry.host}/cross/team/from-skopeo:v1`;
  const digestFile = path.join(work, 'from-skopeo.digest');
  await skopeo.skopeo(['copy', '--dest-tls-verify=false', '--digestfile', digestFile, `oci:${layout}:v1`, `docker://${reference}`]);
  const digest = (await readFile(digestFile, 'utf8')).trim();
  t.is(digest, image.manifest.digest);

  const files = { ...layers[0], ...layers[1] };
  await assertDockerPulls(t, reference, digest, image.config.digest, files);
  await assertPodmanPulls(t, reference, digest, image.config.digest, files);
});
