// Starting and stopping the two registries under test, each as its own process on a loopback
// port with its own temporary data directory, and sampling a process's resident memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startScript } from '../test/helpers/start-script.js';
import { childPids } from '../test/helpers/server-process.js';

export const GO_REGISTRY_BINARY = '/usr/bin/docker-registry';
// Generous: on this shared 2-core machine under load a PGlite start has taken over a minute.
const READY_TIMEOUT_MS = 300_000;
const STOP_TIMEOUT_MS = 30_000;

export interface ServerHandle {
  label: string;
  pid: number;
  baseUrl: string;
  stderrFile: string;
  /** performance.now() when GET /v2/ first answered (the scale rows time restarts by it). */
  answeredAt: number;
  stop(): Promise<void>;
}

/**
 * Everything the run created, undone in reverse order by `cleanup()`, also after a failure. Should
 * the bench die before that, an exit hook still kills the servers and removes the directories.
 */
export class Resources {
  private readonly undo: (() => Promise<void>)[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly dirs = new Set<string>();

  constructor() {
    process.once('exit', () => {
      for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      for (const dir of this.dirs) rmSync(dir, { recursive: true, force: true });
    });
  }

  defer(fn: () => Promise<void>): void {
    this.undo.push(fn);
  }

  async tempDir(prefix: string): Promise<string> {
    const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
    this.dirs.add(dir);
    this.defer(async () => {
      await rm(dir, { recursive: true, force: true });
      this.dirs.delete(dir);
    });
    return dir;
  }

  /** A server process, stopped (SIGTERM, then SIGKILL after 30 s) on clean-up. */
  adopt(child: ChildProcess): void {
    this.children.add(child);
    this.defer(() => stopChild(child));
  }

  async cleanup(): Promise<void> {
    while (this.undo.length > 0) {
      const fn = this.undo.pop()!;
      await fn().catch((err: unknown) => process.stderr.write(`bench: cleanup step failed: ${String(err)}\n`));
    }
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** The environment without REGISTRY_* variables, so neither server picks up the caller's settings. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('REGISTRY_') && key !== 'NODE_OPTIONS') env[key] = value;
  }
  return { ...env, ...extra };
}

function launch(
  resources: Resources,
  label: string,
  dir: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; stderrFile: string } {
  const stdoutFile = path.join(dir, 'stdout.log');
  const stderrFile = path.join(dir, 'stderr.log');
  const out = openSync(stdoutFile, 'w');
  const err = openSync(stderrFile, 'w');
  const child = spawn(command, args, { env, stdio: ['ignore', out, err] });
  closeSync(out);
  closeSync(err);
  resources.adopt(child);
  if (child.pid === undefined) throw new Error(`${label}: could not start ${command}`);
  return { child, stderrFile };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

/**
 * Polls GET /v2/ until it answers; with `readyz` (Signet), then /readyz until 200: on the embedded
 * database Signet answers /v2/ while the database still starts (server/serve.ts), and rows must
 * not count that start (or a fresh cluster's initdb) as their workload's time or memory.
 * Resolves with the performance.now() of the first answer to /v2/.
 */
async function waitReady(label: string, child: ChildProcess, baseUrl: string, stderrFile: string, readyz = false): Promise<number> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let answeredAt: number | undefined;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${label} exited during start-up:\n${tail(stderrFile)}`);
    }
    try {
      const res = await fetch(`${baseUrl}${answeredAt === undefined ? '/v2/' : '/readyz'}`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (answeredAt === undefined) {
        // 401: up, with authentication configured.
        if (res.status === 200 || res.status === 401) answeredAt = performance.now();
      } else if (res.status === 200) return answeredAt;
      if (answeredAt !== undefined && !readyz) return answeredAt;
    } catch {
      // not listening yet
    }
    // Often: the scale rows time restarts by this loop.
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(
    `${label} did not ${answeredAt === undefined ? 'answer GET /v2/' : 'get ready'} within ${READY_TIMEOUT_MS / 1000} s:\n${tail(stderrFile)}`,
  );
}

export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no output)';
  }
}

/**
 * Signet from the built dist/ with the start script's node flags, embedded PGlite, warn-level logs and no access log. BENCH_SIGNET_NODE_ARGS
 * adds node flags (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") for profiling.
 */
export async function startSignet(resources: Resources, extraEnv: Record<string, string> = {}, label = 'Signet'): Promise<ServerHandle> {
  const dir = await resources.tempDir('signet-bench-');
  const port = await freePort();
  const main = fileURLToPath(new URL('../dist/server/main.js', import.meta.url));
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const start = startScript();
  const nodeArgs = [...start.flags, ...(process.env.BENCH_SIGNET_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)];
  const env = cleanEnv({
    ...start.env,
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
    REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
    REGISTRY_LOG_LEVEL: 'warn',
    REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    ...extraEnv,
  });
  const { child, stderrFile } = launch(resources, 'signet', dir, process.execPath, [...nodeArgs, main, 'serve'], env);
  const baseUrl = `http://127.0.0.1:${port}`;
  const answeredAt = await waitReady('signet', child, baseUrl, stderrFile, true);
  return { label, pid: child.pid!, baseUrl, stderrFile, answeredAt, stop: () => stopChild(child) };
}

/** bench/node-relay.ts in front of `upstream`: what passing bytes through one node process costs. */
export async function startNodeRelay(resources: Resources, upstream: ServerHandle): Promise<ServerHandle> {
  const dir = await resources.tempDir('node-relay-bench-');
  const port = await freePort();
  const script = fileURLToPath(new URL('./node-relay.ts', import.meta.url));
  const start = startScript();
  const args = [...start.flags, '--import', 'tsx', script, upstream.baseUrl, String(port)];
  const { child, stderrFile } = launch(resources, 'node relay', dir, process.execPath, args, cleanEnv(start.env));
  const baseUrl = `http://127.0.0.1:${port}`;
  const answeredAt = await waitReady('node relay', child, baseUrl, stderrFile);
  return { label: 'node relay', pid: child.pid!, baseUrl, stderrFile, answeredAt, stop: () => stopChild(child) };
}

/**
 * The Go reference registry as Debian ships it, configured like Debian's own config.yml (in-memory
 * blob descriptor cache, nosniff header) minus auth and health checks, with logging matched to Signet.
 */
export async function startGoRegistry(resources: Resources): Promise<ServerHandle> {
  const dir = await resources.tempDir('go-registry-bench-');
  const port = await freePort();
  const configFile = path.join(dir, 'config.yml');
  writeFileSync(
    configFile,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  cache:',
      '    blobdescriptor: inmemory',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'storage')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: signet-bench-not-a-secret',
      '  headers:',
      '    X-Content-Type-Options: [nosniff]',
      '',
    ].join('\n'),
  );
  const { child, stderrFile } = launch(resources, 'docker-registry', dir, GO_REGISTRY_BINARY, ['serve', configFile], cleanEnv({}));
  const baseUrl = `http://127.0.0.1:${port}`;
  const answeredAt = await waitReady('docker-registry', child, baseUrl, stderrFile);
  return { label: 'Go registry', pid: child.pid!, baseUrl, stderrFile, answeredAt, stop: () => stopChild(child) };
}

/**
 * A stand-in for a registry that only does what a push must: the machine's bound for "HTTP body →
 * sha256 → file" (bench/body-sink.ts), a node process of its own like Signet.
 */
export async function startBodySink(resources: Resources): Promise<ServerHandle> {
  const dir = await resources.tempDir('body-sink-bench-');
  const port = await freePort();
  const script = fileURLToPath(new URL('./body-sink.ts', import.meta.url));
  const args = ['--import', 'tsx', script, `127.0.0.1:${port}`, path.join(dir, 'bodies')];
  const { child, stderrFile } = launch(resources, 'body sink', dir, process.execPath, args, cleanEnv({}));
  const baseUrl = `http://127.0.0.1:${port}`;
  const answeredAt = await waitReady('body sink', child, baseUrl, stderrFile);
  return { label: 'body sink', pid: child.pid!, baseUrl, stderrFile, answeredAt, stop: () => stopChild(child) };
}

function readStatusField(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssFile'): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The process's resident set now, in bytes (0 once it is gone). */
export function currentRss(pid: number): number {
  return readStatusField(pid, 'VmRSS') ?? 0;
}

/**
 * The pids of a process's children, their children and so on: a registry's whole process tree
 * (Signet's embedded database runs as a child process, or in the server's own, whichever it is).
 */
export function descendantPids(pid: number): number[] {
  return childPids(pid).flatMap((child) => [child, ...descendantPids(child)]);
}

export interface TreeRss {
  /** VmRSS of the process and all its descendants, summed, in bytes. */
  total: number;
  server: number;
  descendants: number;
  /**
   * File-backed pages of the descendants (RssFile): mostly the code they share with the server
   * (the node binary), so counted twice in `total`, as adding up `ps` or `top` figures does.
   */
  descendantsFile: number;
}

/** The resident set of a registry's whole process tree now. */
export function treeRss(pid: number): TreeRss {
  const descendants = descendantPids(pid);
  const sum = (field: 'VmRSS' | 'RssFile'): number => descendants.reduce((total, child) => total + (readStatusField(child, field) ?? 0), 0);
  const server = currentRss(pid);
  const children = sum('VmRSS');
  return { total: server + children, server, descendants: children, descendantsFile: sum('RssFile') };
}

export interface RssSampler {
  /** Stops sampling; the peak resident set in bytes. */
  stop(): number;
  /** The peak resident set of the process's children (Signet's embedded database), summed. */
  childrenPeak(): number;
}

/**
 * Samples VmRSS every 100 ms. Where the kernel allows resetting the high-water mark
 * (`echo 5 > /proc/<pid>/clear_refs`), VmHWM is read at the end too, so a spike between samples
 * is not missed.
 */
export function sampleRss(pid: number): RssSampler {
  let hwmReset = false;
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    hwmReset = true;
  } catch {
    // not permitted: samples only
  }
  let peak = readStatusField(pid, 'VmRSS') ?? 0;
  let childrenPeak = 0;
  const sample = (): void => {
    peak = Math.max(peak, readStatusField(pid, 'VmRSS') ?? 0);
    childrenPeak = Math.max(
      childrenPeak,
      childPids(pid).reduce((sum, child) => sum + (readStatusField(child, 'VmRSS') ?? 0), 0),
    );
  };
  sample();
  const timer = setInterval(sample, 100);
  return {
    stop() {
      clearInterval(timer);
      sample();
      if (hwmReset) peak = Math.max(peak, readStatusField(pid, 'VmHWM') ?? 0);
      return peak;
    },
    childrenPeak: () => childrenPeak,
  };
}
