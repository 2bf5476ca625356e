// A Docker daemon of the test's own: state, sockets, keys and client config all under one short
// temporary directory (unix socket paths are limited to ~100 bytes), vfs storage (works in any
// container, no overlay mounts), no iptables or bridge changes on the host. Docker treats
// registries on 127.0.0.0/8 as plain HTTP, so no daemon.json is needed for the test registry.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tarOf, type Files } from './rootfs.js';
import { CommandError, run, runExpectingFailure, type RunOptions, type RunResult } from './run.js';

export interface Dockerd {
  dir: string;
  /** DOCKER_HOST and DOCKER_CONFIG for this daemon, over the rest of process.env. */
  env: NodeJS.ProcessEnv;
  docker(args: string[], options?: RunOptions): Promise<RunResult>;
  dockerFails(args: string[], options?: RunOptions): Promise<CommandError>;
  /** The end of the daemon's log, for assertion messages. */
  logTail(lines?: number): string;
  /** SIGTERM, wait for the exit (SIGKILL to the group after a while), remove the directory. */
  stop(): Promise<void>;
}

export interface DockerdOptions {
  /** How long to wait for `docker info` to answer. */
  startTimeoutMs?: number;
}

function dockerdMajorVersion(): number {
  const version = spawnSync('dockerd', ['--version'], { encoding: 'utf8' }).stdout ?? '';
  return Number(/version (\d+)\./.exec(version)?.[1] ?? 0);
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function dockerdArgs(dir: string): string[] {
  const namespace = `signet-e2e-${randomBytes(4).toString('hex')}`;
  return [
    '--storage-driver=vfs',
    '--iptables=false',
    '--ip6tables=false',
    '--ip-forward=false',
    '--bridge=none',
    '--data-root',
    path.join(dir, 'root'),
    '--exec-root',
    path.join(dir, 'exec'),
    '--pidfile',
    path.join(dir, 'pid'),
    '--config-file',
    path.join(dir, 'daemon.json'),
    // If the host runs containerd (/run/containerd), dockerd uses it: keep to our own namespace.
    '--containerd-namespace',
    namespace,
    '--containerd-plugins-namespace',
    `${namespace}-plugins`,
    '-H',
    `unix://${path.join(dir, 'docker.sock')}`,
  ];
}

/** Client and daemon configuration of our own: not ~/.docker, /etc/docker/daemon.json or key.json. */
async function writeConfig(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'config'));
  await writeFile(path.join(dir, 'config', 'config.json'), '{}\n');
  // dockerd before 23 writes a key.json, by default into /etc/docker.
  const daemonConfig = dockerdMajorVersion() < 23 ? { 'deprecated-key-path': path.join(dir, 'key.json') } : {};
  await writeFile(path.join(dir, 'daemon.json'), `${JSON.stringify(daemonConfig)}\n`);
}

/** Signals dockerd's process group (dockerd, and the containerd it started), if any is left. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the whole group is gone
  }
}

async function waitUntilAnswering(child: ChildProcess, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    if (exited(child)) throw new Error(`dockerd exited during start-up (${child.exitCode ?? child.signalCode})`);
    try {
      await run('docker', ['info', '--format', '{{.ServerVersion}}'], { env, timeoutMs: 10_000 });
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`dockerd did not answer \`docker info\` in time\n${lastError}`);
    await sleep(250);
  }
}

export async function startDockerd(options: DockerdOptions = {}): Promise<Dockerd> {
  const dir = await mkdtemp('/tmp/sdk-'); // short: the socket path must stay under ~100 bytes
  await writeConfig(dir);
  const logFile = path.join(dir, 'dockerd.log');
  const log = openSync(logFile, 'a');
  // A process group of its own, so a forced stop also reaches the containerd dockerd started.
  const child = spawn('dockerd', dockerdArgs(dir), { stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  child.unref(); // stop() ends it; an unfinished test must not keep the worker alive
  const killOnExit = (): void => signalGroup(child, 'SIGKILL');
  process.once('exit', killOnExit);

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DOCKER_HOST: `unix://${path.join(dir, 'docker.sock')}`,
    DOCKER_CONFIG: path.join(dir, 'config'),
  };
  for (const name of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']) delete env[name];
  const logTail = (lines = 30): string => {
    try {
      return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no dockerd log)';
    }
  };

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited(child)) {
      child.kill('SIGTERM'); // dockerd stops its containerd itself on SIGTERM
      if (!(await waitForExit(child, 30_000))) {
        signalGroup(child, 'SIGKILL');
        await waitForExit(child, 10_000);
      }
    }
    signalGroup(child, 'SIGKILL'); // anything dockerd left behind
    process.removeListener('exit', killOnExit);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };

  try {
    await waitUntilAnswering(child, env, options.startTimeoutMs ?? 60_000);
  } catch (err) {
    const tail = logTail();
    await stop();
    throw new Error(`${(err as Error).message}\n--- dockerd log ---\n${tail}`);
  }

  return {
    dir,
    env,
    async docker(args, runOptions = {}) {
      try {
        return await run('docker', args, { env, ...runOptions });
      } catch (err) {
        if (err instanceof CommandError) err.message += `\n--- dockerd log ---\n${logTail(15)}`;
        throw err;
      }
    },
    dockerFails: (args, runOptions = {}) => runExpectingFailure('docker', args, { env, ...runOptions }),
    logTail,
    stop,
  };
}

/** `docker push`; returns the manifest digest docker prints (`v1: digest: sha256:… size: …`). */
export async function dockerPush(dockerd: Dockerd, reference: string): Promise<string> {
  const { stdout } = await dockerd.docker(['push', reference]);
  const digest = /digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(stdout)?.[1];
  if (!digest) throw new Error(`docker push ${reference} printed no digest:\n${stdout}`);
  return digest;
}

/** `docker pull`; returns the digest docker prints (`Digest: sha256:…`). */
export async function dockerPull(dockerd: Dockerd, reference: string): Promise<string> {
  const { stdout } = await dockerd.docker(['pull', reference]);
  const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
  if (!digest) throw new Error(`docker pull ${reference} printed no digest:\n${stdout}`);
  return digest;
}

interface DockerImage {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  RootFS: { Layers: string[] };
}

export async function dockerInspect(dockerd: Dockerd, reference: string): Promise<DockerImage> {
  const { stdout } = await dockerd.docker(['image', 'inspect', '--format', '{{json .}}', reference]);
  return JSON.parse(stdout) as DockerImage;
}

/** Reads files out of an image, through a created (never started) container. */
export async function dockerReadFiles(dockerd: Dockerd, reference: string, names: string[], work: string): Promise<Files> {
  const { stdout } = await dockerd.docker(['create', reference, '/nonexistent']);
  const container = stdout.trim();
  try {
    const files: Files = {};
    for (const name of names) {
      const out = path.join(work, `${container.slice(0, 12)}-${name}`);
      await dockerd.docker(['cp', `${container}:/${name}`, out]);
      files[name] = await readFile(out);
    }
    return files;
  } finally {
    await dockerd.docker(['rm', container]);
  }
}

/** `docker import` of a tarball of `files`; returns the image id. */
export async function dockerImport(dockerd: Dockerd, files: Files, work: string, tag: string): Promise<string> {
  const tarball = path.join(work, `${tag.replace(/[^a-z0-9]/g, '-')}.tar`);
  await writeFile(tarball, tarOf(files));
  const { stdout } = await dockerd.docker(['import', tarball, tag]);
  return stdout.trim();
}
