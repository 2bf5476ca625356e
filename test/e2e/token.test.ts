// Token mode (REGISTRY_AUTH=token) with the real clients: docker pulls a public project without
// `docker login` (it needs the Bearer challenge for that), is refused a private one with a clear
// message, logs in (and then renews its tokens with the refresh token it stored as its identity
// token); docker, podman, skopeo and ctr log in and push with a robot account; an expired or
// revoked robot is refused. One registry, one dockerd and one sandbox per client for the file.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { basic, createProject, writeHtpasswd } from '../helpers/auth.js';
import { createPodman, createSkopeo, podmanImport, type Podman, type Skopeo } from '../helpers/containers-tools.js';
import { dockerImport, dockerPull, dockerPush, startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { testWithCommands } from '../helpers/env.js';
import { layoutTop } from '../helpers/layout-reader.js';
import { makeImage, writeOciLayout } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { randomFiles } from '../helpers/rootfs.js';
import { run, runExpectingFailure, type RunOptions } from '../helpers/run.js';

interface Context {
  registry: TestRegistry;
  work: string;
  dockerd: Dockerd;
  podman: Podman;
  skopeo: Skopeo;
}

const test = testWithCommands<Context>('token e2e', []);
const dockerTest = testWithCommands<Context>('token e2e with docker', ['docker', 'dockerd'], { root: true });
const ctrTest = testWithCommands<Context>('token e2e with ctr', ['docker', 'dockerd', 'ctr'], { root: true });
const podmanTest = testWithCommands<Context>('token e2e with podman', ['podman'], { root: true });
const skopeoTest = testWithCommands<Context>('token e2e with skopeo', ['skopeo']);
type T = ExecutionContext<Context>;

const USERS = { root: 'root-pw', dev: 'dev-pw' };

test.before(async (t) => {
  t.context.work = await mkdtemp(path.join(os.tmpdir(), 'signet-e2e-token-'));
  const htpasswd = path.join(t.context.work, 'htpasswd');
  await writeHtpasswd(htpasswd, USERS);
  t.context.registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'token', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd, REGISTRY_AUTH_ADMINS: 'root' },
  });
  const admin: [string, string] = ['root', USERS.root];
  await createProject(t.context.registry.url, admin, 'pub', { public: true, members: { dev: 'developer' } });
  await createProject(t.context.registry.url, admin, 'priv', { public: false, members: { dev: 'developer' } });
});
dockerTest.before(async (t) => {
  t.context.dockerd = await startDockerd();
});
podmanTest.before(async (t) => {
  t.context.podman = await createPodman();
});
skopeoTest.before(async (t) => {
  t.context.skopeo = await createSkopeo();
});
test.after.always(async (t) => {
  await t.context.dockerd?.stop();
  await t.context.podman?.close();
  await t.context.skopeo?.close();
  await t.context.registry?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

let dirs = 0;
async function workDir(t: T, label: string): Promise<string> {
  const dir = path.join(t.context.work, `${label}-${++dirs}`);
  await mkdir(dir);
  return dir;
}

/** A robot of project priv, through the API as the registry admin: its account name and secret. */
async function createRobot(t: T, name: string, role = 'developer'): Promise<{ user: string; secret: string }> {
  const res = await fetch(`${t.context.registry.url}/api/v1/projects/priv/robots`, {
    method: 'POST',
    headers: { Authorization: basic('root', USERS.root), 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, role, expiresInDays: 90 }),
  });
  t.is(res.status, 201);
  const body = (await res.json()) as { name: string; secret: string };
  return { user: body.name, secret: body.secret };
}

async function revokeRobot(t: T, name: string): Promise<void> {
  const res = await fetch(`${t.context.registry.url}/api/v1/projects/priv/robots/${name}`, {
    method: 'DELETE',
    headers: { Authorization: basic('root', USERS.root) },
  });
  t.is(res.status, 204);
}

/** Sets a robot's expiry into the past, as time passing would. */
async function expireRobot(t: T, name: string): Promise<void> {
  await t.context.registry.registry.db.query(
    `UPDATE robots SET expires_at = now() - interval '1 minute' WHERE project = 'priv' AND name = $1`,
    [name],
  );
}

// --- docker -------------------------------------------------------------------------------------

/** The test's daemon through a docker CLI with a DOCKER_CONFIG of its own. */
async function dockerClient(t: T) {
  const { dockerd, registry } = t.context;
  const config = await workDir(t, 'docker-config');
  await writeFile(path.join(config, 'config.json'), '{}\n');
  const env = { ...dockerd.env, DOCKER_CONFIG: config };
  const loginArgs = (user: string) => ['login', '--username', user, '--password-stdin', registry.host];
  return {
    ...dockerd,
    env,
    docker: (args: string[], options: RunOptions = {}) => dockerd.docker(args, { ...options, env }),
    dockerFails: (args: string[], options: RunOptions = {}) => dockerd.dockerFails(args, { ...options, env }),
    login: (user: string, password: string) => dockerd.docker(loginArgs(user), { env, input: `${password}\n` }),
    loginFails: (user: string, password: string) => dockerd.dockerFails(loginArgs(user), { env, input: `${password}\n` }),
    async stored(): Promise<Record<string, { auth?: string; identitytoken?: string }>> {
      const parsed = JSON.parse(await readFile(path.join(config, 'config.json'), 'utf8')) as {
        auths?: Record<string, { auth?: string; identitytoken?: string }>;
      };
      return parsed.auths ?? {};
    },
  };
}

async function dockerImage(t: T, reference: string): Promise<string> {
  const label = `signet-e2e/token-${++dirs}:v1`;
  const id = await dockerImport(t.context.dockerd, randomFiles('token', 1), t.context.work, label);
  await t.context.dockerd.docker(['tag', label, reference]);
  return id;
}

dockerTest(
  'docker: login renews with its identity token; anonymous pulls of a public project work, a private one is refused',
  async (t) => {
    const { registry, dockerd } = t.context;
    const user = await dockerClient(t);
    const pub = `${registry.host}/pub/docker-app:v1`;
    const priv = `${registry.host}/priv/docker-app:v1`;
    await dockerImage(t, pub);
    await dockerd.docker(['tag', pub, priv]);

    const login = await user.login('dev', USERS.dev);
    t.regex(login.stdout, /Login Succeeded/);
    // docker asked for a refresh token (offline_token=true) and keeps it instead of the password.
    const stored = (await user.stored())[registry.host];
    t.truthy(stored?.identitytoken, 'docker login stored no identity token');
    const pushed = await dockerPush(user, pub);
    t.is(await dockerPush(user, priv), pushed);

    await dockerd.docker(['rmi', pub, priv]);
    const anonymous = await dockerClient(t);
    t.is(await dockerPull(anonymous, pub), pushed, 'docker without login could not pull a public image');
    const refused = await anonymous.dockerFails(['pull', priv]);
    t.regex(
      refused.stderr,
      /pull access denied for [^,]+\/priv\/docker-app, repository does not exist or may require 'docker login'/,
      refused.message,
    );
    const anonymousPush = await anonymous.dockerFails(['push', pub]);
    t.regex(anonymousPush.stderr + anonymousPush.stdout, /unauthorized|denied/i, anonymousPush.message);

    t.is(await dockerPull(user, priv), pushed);
  },
);

dockerTest('docker: a robot logs in and pushes; revoked, its stored login stops working; expired, it cannot log in', async (t) => {
  const { registry } = t.context;
  const client = await dockerClient(t);
  const robot = await createRobot(t, 'docker-ci');
  const reference = `${registry.host}/priv/robot-docker:v1`;
  await dockerImage(t, reference);
  t.regex((await client.login(robot.user, robot.secret)).stdout, /Login Succeeded/);
  await dockerPush(client, reference);

  await revokeRobot(t, 'docker-ci');
  const revoked = await client.dockerFails(['push', reference]);
  t.regex(revoked.stderr + revoked.stdout, /unauthorized|denied|refresh token/i, revoked.message);
  const relogin = await client.loginFails(robot.user, robot.secret);
  t.regex(relogin.stderr, /unauthorized|invalid username or password/i, relogin.message);

  const expiring = await createRobot(t, 'docker-expired');
  await expireRobot(t, 'docker-expired');
  const expired = await client.loginFails(expiring.user, expiring.secret);
  t.regex(expired.stderr, /unauthorized|invalid username or password/i, expired.message);
});

// ctr talks to the containerd dockerd uses, in a namespace of its own; it fetches tokens with the OAuth2 password grant (POST /token).
ctrTest('ctr: pushes with a robot account (OAuth2 password grant) and pulls it back', async (t) => {
  const { registry, dockerd, work } = t.context;
  const robot = await createRobot(t, 'ctr-ci');
  const reference = `${registry.host}/priv/robot-ctr:v1`;
  await dockerImage(t, reference);
  const tarball = path.join(work, 'ctr-image.tar');
  await dockerd.docker(['save', '--output', tarball, reference]);
  // dockerd's own containerd, or the host's when one runs (dockerd then uses that one).
  const own = path.join(dockerd.dir, 'exec', 'containerd', 'containerd.sock');
  const address = existsSync(own) ? own : '/run/containerd/containerd.sock';
  const ctr = (args: string[]) => ['--address', address, '--namespace', 'signet-token-e2e', ...args];
  await run('ctr', ctr(['images', 'import', '--no-unpack', tarball]));
  await run('ctr', ctr(['images', 'push', '--plain-http', '--user', `${robot.user}:${robot.secret}`, reference]));
  const manifest = await fetch(`${registry.url}/v2/priv/robot-ctr/manifests/v1`, {
    method: 'HEAD',
    headers: {
      Authorization: basic(robot.user, robot.secret),
      Accept:
        'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
    },
  });
  t.is(manifest.status, 200, 'the image ctr pushed is not in the registry');
  await run('ctr', ctr(['images', 'rm', reference]));
  await run('ctr', ctr(['content', 'fetch', '--plain-http', '--user', `${robot.user}:${robot.secret}`, reference]));

  await revokeRobot(t, 'ctr-ci');
  const refused = await runExpectingFailure(
    'ctr',
    ctr(['images', 'push', '--plain-http', '--user', `${robot.user}:${robot.secret}`, reference]),
  );
  t.regex(refused.stderr, /401|unauthorized/i, refused.message);
});

// --- podman and skopeo -------------------------------------------------------------------------

podmanTest('podman: a robot logs in and pushes; an expired one cannot log in', async (t) => {
  const { registry, podman, work } = t.context;
  const robot = await createRobot(t, 'podman-ci');
  const authFile = path.join(await workDir(t, 'podman-auth'), 'auth.json');
  await writeFile(authFile, '{}\n');
  const env = { ...podman.env, REGISTRY_AUTH_FILE: authFile };
  const tls = '--tls-verify=false';
  const reference = `${registry.host}/priv/robot-podman:v1`;
  const imageId = await podmanImport(podman, randomFiles('podman-token', 1), work, 'signet-e2e/podman-token:v1');
  await podman.podman(['tag', imageId, reference]);

  const login = await podman.podman(['login', tls, '--username', robot.user, '--password-stdin', registry.host], {
    env,
    input: `${robot.secret}\n`,
  });
  t.regex(login.stdout, /Login Succeeded/);
  await podman.podman(['push', tls, reference], { env });
  await podman.podman(['rmi', '--force', imageId]);
  const { stdout } = await podman.podman(['pull', '--quiet', tls, reference], { env });
  t.is(stdout.trim(), imageId);

  const expiring = await createRobot(t, 'podman-expired');
  await expireRobot(t, 'podman-expired');
  const expired = await podman.podmanFails(['login', tls, '--username', expiring.user, '--password-stdin', registry.host], {
    env,
    input: `${expiring.secret}\n`,
  });
  t.regex(expired.stderr, /invalid username\/password|unauthorized/i, expired.message);
});

skopeoTest('skopeo: a robot logs in and copies in and out; revoked, it is refused', async (t) => {
  const { registry, skopeo } = t.context;
  const robot = await createRobot(t, 'skopeo-ci');
  const authFile = path.join(await workDir(t, 'skopeo-auth'), 'auth.json');
  const env = { ...skopeo.env, REGISTRY_AUTH_FILE: authFile };
  const tls = ['--src-tls-verify=false', '--dest-tls-verify=false'];
  const image = makeImage({ layers: 1 });
  const source = await workDir(t, 'layout');
  await writeOciLayout(source, [image], image.manifest, 'v1');
  const reference = `docker://${registry.host}/priv/robot-skopeo:v1`;

  const login = await skopeo.skopeo(['login', '--tls-verify=false', '--username', robot.user, '--password-stdin', registry.host], {
    env,
    input: `${robot.secret}\n`,
  });
  t.regex(login.stdout, /Login Succeeded/);
  await skopeo.skopeo(['copy', ...tls, `oci:${source}:v1`, reference], { env });
  const copied = await workDir(t, 'skopeo-out');
  await skopeo.skopeo(['copy', ...tls, reference, `oci:${copied}:v1`], { env });
  t.is((await layoutTop(copied, 'v1')).digest, image.manifest.digest);

  await revokeRobot(t, 'skopeo-ci');
  const refused = await skopeo.skopeoFails(['copy', ...tls, `oci:${source}:v1`, reference], { env });
  t.regex(refused.stderr, /unauthorized|invalid username\/password/i, refused.message);
});
