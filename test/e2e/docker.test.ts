// docker (the Debian docker.io daemon, its own instance on vfs) against the real registry: push an
// imported image and one built on top of it, remove them, pull them back, and check what a user
// sees: the image id, the digest docker reports, RepoDigests and the files in the image.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { dockerImport, dockerInspect, dockerPull, dockerPush, dockerReadFiles, startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { testWithCommands } from '../helpers/env.js';
import { sha256 } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { randomFiles, type Files } from '../helpers/rootfs.js';

interface Context {
  registry: TestRegistry;
  dockerd: Dockerd;
  work: string;
}

const test = testWithCommands<Context>('docker e2e', ['docker', 'dockerd'], { root: true });
type T = ExecutionContext<Context>;

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

test.before(async (t) => {
  t.context.work = await mkdtemp(path.join(os.tmpdir(), 'signet-e2e-docker-'));
  t.context.registry = await startTestRegistry();
  t.context.dockerd = await startDockerd();
});

test.after.always(async (t) => {
  await t.context.dockerd?.stop();
  await t.context.registry?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

async function assertFiles(t: T, reference: string, expected: Files): Promise<void> {
  const actual = await dockerReadFiles(t.context.dockerd, reference, Object.keys(expected), t.context.work);
  for (const [name, content] of Object.entries(expected)) {
    t.true(actual[name]?.equals(content), `${name} in ${reference} does not hold the bytes imported`);
  }
}

async function registryManifest(t: T, repository: string, reference: string): Promise<{ digest: string | null; body: Buffer }> {
  const response = await fetch(`${t.context.registry.url}/v2/${repository}/manifests/${reference}`, {
    headers: { Accept: DOCKER_MANIFEST },
  });
  t.is(response.status, 200, `GET manifest ${repository}:${reference}`);
  return { digest: response.headers.get('Docker-Content-Digest'), body: Buffer.from(await response.arrayBuffer()) };
}

test('push, rmi, pull: same image id, digest and file bytes', async (t) => {
  const { dockerd, registry, work } = t.context;
  const files = randomFiles('docker', 2);
  const imageId = await dockerImport(dockerd, files, work, 'signet-e2e/imported:v1');
  const reference = `${registry.host}/e2e/docker:v1`;
  await dockerd.docker(['tag', 'signet-e2e/imported:v1', reference]);

  const pushed = await dockerPush(dockerd, reference);
  const served = await registryManifest(t, 'e2e/docker', 'v1');
  t.is(served.digest, pushed, 'the registry serves another digest than docker pushed');
  t.is(sha256(served.body), pushed, 'the manifest bytes do not hash to the digest docker pushed');
  const manifest = JSON.parse(served.body.toString('utf8')) as { mediaType: string; config: { digest: string } };
  t.is(manifest.mediaType, DOCKER_MANIFEST);
  t.is(manifest.config.digest, imageId, 'the pushed config is not the image docker imported');

  await dockerd.docker(['rmi', reference, 'signet-e2e/imported:v1']);
  const gone = await dockerd.dockerFails(['image', 'inspect', imageId]);
  t.regex(gone.stderr, /no such image/i, gone.message);

  const pulled = await dockerPull(dockerd, reference);
  t.is(pulled, pushed);
  const image = await dockerInspect(dockerd, reference);
  t.is(image.Id, imageId);
  t.deepEqual(image.RepoDigests, [`${registry.host}/e2e/docker@${pushed}`]);
  await assertFiles(t, reference, files);
});

test('a two-layer image built on a pushed one: shared layer reused, pull by digest', async (t) => {
  const { dockerd, registry, work } = t.context;
  const baseFiles = randomFiles('base', 1);
  await dockerImport(dockerd, baseFiles, work, 'signet-e2e/base:v1');
  const base = `${registry.host}/e2e/layers/base:v1`;
  await dockerd.docker(['tag', 'signet-e2e/base:v1', base]);
  await dockerPush(dockerd, base);

  // A COPY-only Dockerfile: the classic builder makes the layer without running a container.
  const context = path.join(work, 'build-context');
  const topFiles = randomFiles('top', 1);
  const [topName] = Object.keys(topFiles);
  await mkdir(context);
  await writeFile(path.join(context, topName!), topFiles[topName!]!);
  await writeFile(path.join(context, 'Dockerfile'), `FROM ${base}\nCOPY ${topName} /${topName}\n`);
  const app = `${registry.host}/e2e/layers/app:v2`;
  await dockerd.docker(['build', '--quiet', '--tag', app, context], { env: { ...dockerd.env, DOCKER_BUILDKIT: '0' } });
  const built = await dockerInspect(dockerd, app);
  t.is(built.RootFS.Layers.length, 2);

  const { stdout } = await dockerd.docker(['push', app]);
  t.regex(stdout, /Mounted from e2e\/layers\/base|Layer already exists/, 'the base layer was uploaded again');
  const pushed = /digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
  t.truthy(pushed, stdout);

  await dockerd.docker(['rmi', app, base, 'signet-e2e/base:v1']);
  const byDigest = `${registry.host}/e2e/layers/app@${pushed!}`;
  t.is(await dockerPull(dockerd, byDigest), pushed!);
  const image = await dockerInspect(dockerd, byDigest);
  t.is(image.Id, built.Id);
  t.deepEqual(image.RootFS.Layers, built.RootFS.Layers);
  await assertFiles(t, byDigest, { ...baseFiles, ...topFiles });
});

test('pulling what was never pushed fails with manifest unknown or name unknown', async (t) => {
  const { dockerd, registry, work } = t.context;
  await dockerImport(dockerd, randomFiles('missing', 1), work, 'signet-e2e/missing:v1');
  const pushedTag = `${registry.host}/e2e/docker-missing:v1`;
  await dockerd.docker(['tag', 'signet-e2e/missing:v1', pushedTag]);
  await dockerPush(dockerd, pushedTag);

  const noTag = await dockerd.dockerFails(['pull', `${registry.host}/e2e/docker-missing:never-pushed`]);
  t.regex(noTag.stderr, /manifest unknown/i, noTag.message);
  const noRepository = await dockerd.dockerFails(['pull', `${registry.host}/e2e/never-pushed:v1`]);
  t.regex(noRepository.stderr, /name unknown/i, noRepository.message);
});
