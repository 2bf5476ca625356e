// skopeo and podman (containers/image, containers/storage) with every setting in a temporary
// directory of their own: an empty auth file, a trust policy that accepts anything, no search
// registries, no lookaside configuration, vfs image storage; nothing reads or writes the user's
// ~/.config, ~/.docker, /etc/containers/storage.conf or /var/lib/containers/storage.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tarOf, type Files } from './rootfs.js';
import { run, runExpectingFailure, type CommandError, type RunOptions, type RunResult } from './run.js';

interface Sandbox {
  dir: string;
  env: NodeJS.ProcessEnv;
  policy: string;
  close(): Promise<void>;
}

async function createSandbox(prefix: string): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  for (const sub of ['home', 'xdg-runtime', 'xdg-config', 'registries.d', 'tmp']) await mkdir(path.join(dir, sub));
  const file = (name: string): string => path.join(dir, name);
  await writeFile(file('auth.json'), '{}\n');
  await writeFile(file('policy.json'), JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  await writeFile(file('registries.conf'), 'unqualified-search-registries = []\n');
  await writeFile(file('storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${file('root')}"\nrunroot = "${file('run')}"\n`);
  await writeFile(file('containers.conf'), '[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\n');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: file('home'),
    XDG_RUNTIME_DIR: file('xdg-runtime'),
    XDG_CONFIG_HOME: file('xdg-config'),
    XDG_DATA_HOME: path.join(file('home'), '.local', 'share'),
    REGISTRY_AUTH_FILE: file('auth.json'),
    DOCKER_CONFIG: path.join(file('home'), '.docker'),
    CONTAINERS_CONF: file('containers.conf'),
    CONTAINERS_REGISTRIES_CONF: file('registries.conf'),
    CONTAINERS_STORAGE_CONF: file('storage.conf'),
    TMPDIR: file('tmp'),
  };
  return {
    dir,
    env,
    policy: file('policy.json'),
    async close() {
      // vfs needs no mounts; should a driver have made one, release it before removing the tree.
      const mounts = (await readFile('/proc/self/mounts', 'utf8').catch(() => ''))
        .split('\n')
        .map((line) => line.split(' ')[1] ?? '')
        .filter((mountPoint) => mountPoint.startsWith(`${dir}/`))
        .reverse();
      for (const mountPoint of mounts) await run('umount', ['-l', mountPoint]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}

export interface SkopeoRunOptions extends RunOptions {
  /** A trust policy file instead of the sandbox's accept-anything one. */
  policy?: string;
  /** A registries.d directory instead of the sandbox's empty one. */
  registriesD?: string;
}

export interface Skopeo {
  dir: string;
  /** The sandbox's environment, to extend (GNUPGHOME, REGISTRY_AUTH_FILE) in `options.env`. */
  env: NodeJS.ProcessEnv;
  skopeo(args: string[], options?: SkopeoRunOptions): Promise<RunResult>;
  skopeoFails(args: string[], options?: SkopeoRunOptions): Promise<CommandError>;
  close(): Promise<void>;
}

export async function createSkopeo(): Promise<Skopeo> {
  const sandbox = await createSandbox('signet-skopeo-');
  const prepare = (args: string[], options: SkopeoRunOptions): [string[], RunOptions] => {
    const { policy, registriesD, ...runOptions } = options;
    const globalArgs = [
      '--policy',
      policy ?? sandbox.policy,
      '--registries.d',
      registriesD ?? path.join(sandbox.dir, 'registries.d'),
      '--tmpdir',
      path.join(sandbox.dir, 'tmp'),
    ];
    return [[...globalArgs, ...args], { env: sandbox.env, ...runOptions }];
  };
  return {
    dir: sandbox.dir,
    env: sandbox.env,
    skopeo: (args, options = {}) => run('skopeo', ...prepare(args, options)),
    skopeoFails: (args, options = {}) => runExpectingFailure('skopeo', ...prepare(args, options)),
    close: sandbox.close,
  };
}

export interface Podman {
  dir: string;
  /** The sandbox's environment, to extend (GNUPGHOME, REGISTRY_AUTH_FILE) in `options.env`. */
  env: NodeJS.ProcessEnv;
  podman(args: string[], options?: RunOptions): Promise<RunResult>;
  podmanFails(args: string[], options?: RunOptions): Promise<CommandError>;
  /** `podman pull` over plain HTTP; returns the image id it prints. */
  pull(reference: string): Promise<string>;
  /** `podman push` over plain HTTP; returns the manifest digest the registry stored. */
  push(image: string, destination: string, extraArgs?: string[]): Promise<string>;
  close(): Promise<void>;
}

export async function createPodman(): Promise<Podman> {
  const sandbox = await createSandbox('signet-podman-');
  const at = (name: string): string => path.join(sandbox.dir, name);
  const globalArgs = [
    '--root',
    at('root'),
    '--runroot',
    at('run'),
    '--storage-driver',
    'vfs',
    '--tmpdir',
    at('libpod-tmp'),
    '--network-config-dir',
    at('networks'),
    '--events-backend',
    'none',
    '--cgroup-manager',
    'cgroupfs',
  ];
  const podman = (args: string[], options: RunOptions = {}): Promise<RunResult> =>
    run('podman', [...globalArgs, ...args], { env: sandbox.env, ...options });
  let pushes = 0;
  return {
    dir: sandbox.dir,
    env: sandbox.env,
    podman,
    podmanFails: (args, options = {}) => runExpectingFailure('podman', [...globalArgs, ...args], { env: sandbox.env, ...options }),
    async pull(reference) {
      const { stdout } = await podman(['pull', '--tls-verify=false', '--signature-policy', sandbox.policy, reference]);
      return stdout.trim().split('\n').pop() ?? '';
    },
    async push(image, destination, extraArgs = []) {
      const digestFile = at(`push-${++pushes}.digest`);
      await podman(['push', '--tls-verify=false', '--digestfile', digestFile, ...extraArgs, image, destination]);
      return (await readFile(digestFile, 'utf8')).trim();
    },
    close: sandbox.close,
  };
}

/** `podman import` of a tarball of `files`; returns the image id (hex, as podman prints ids). */
export async function podmanImport(podman: Podman, files: Files, work: string, tag: string): Promise<string> {
  const tarball = path.join(work, `${tag.replace(/[^a-z0-9]/g, '-')}.tar`);
  await writeFile(tarball, tarOf(files));
  const { stdout } = await podman.podman(['import', '--quiet', tarball, tag]);
  return stdout.trim().replace(/^sha256:/, '');
}

export interface PodmanImage {
  Id: string;
  Digest: string;
  RepoDigests: string[];
  RepoTags: string[];
}

export async function podmanInspect(podman: Podman, reference: string): Promise<PodmanImage> {
  const { stdout } = await podman.podman(['image', 'inspect', reference]);
  const [image] = JSON.parse(stdout) as PodmanImage[];
  if (!image) throw new Error(`podman image inspect ${reference} returned nothing`);
  return image;
}

/** Reads files out of an image's root file system (`podman image mount`, root only). */
export async function podmanReadFiles(podman: Podman, reference: string, names: string[]): Promise<Files> {
  const { stdout } = await podman.podman(['image', 'mount', reference]);
  const root = stdout.trim();
  try {
    const files: Files = {};
    for (const name of names) files[name] = await readFile(path.join(root, name));
    return files;
  } finally {
    await podman.podman(['image', 'unmount', reference]);
  }
}
