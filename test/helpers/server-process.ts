// The real `signet serve` in a child process, for tests that kill it (SIGKILL, SIGTERM) and start
// it again on the same data.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { seedEmbeddedDatabase } from './pglite-template.js';
import { until } from './wait.js';

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Log lines seen so far (JSON objects). */
  logs: Record<string, unknown>[];
  /** Standard error so far. */
  stderr(): string;
  /**
   * Signals the server and resolves with its exit code once it and its own child processes (the
   * embedded database) are gone: a database process still closing its files after a SIGKILLed
   * parent would otherwise race a test's removal of the data directory.
   */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The pids of a process's children (Linux /proc; empty elsewhere). The bench uses it too. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Pids of a process's children and their children. */
function descendants(pid: number): number[] {
  return childPids(pid).flatMap((child) => [child, ...descendants(child)]);
}

/** Running: it exists and is not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitGone(pids: number[], timeoutMs: number): Promise<void> {
  if (await until(() => !pids.some(running), timeoutMs)) return;
  const left = pids.filter(running);
  for (const pid of left) process.kill(pid, 'SIGKILL');
  throw new Error(`processes ${left.join(', ')} outlived the server by ${timeoutMs} ms`);
}

const MAIN = path.resolve('server/main.ts');

/**
 * Resolves once the server listens; its embedded database may still be starting then (requests
 * that need it wait). `seed: false` leaves an empty data directory to the registry's own initdb.
 * `main`: a built server/main.js to run instead of the sources. `wrapper`: a command node is run
 * under, which execs it (setpriv dropping root's capabilities, for what they would hide).
 */
export async function startServerProcess(
  env: Record<string, string>,
  timeoutMs = 120_000,
  options: { seed?: boolean; main?: string; wrapper?: string[] } = {},
): Promise<ServerProcess> {
  // An empty embedded data directory gets a ready-made cluster (see pglite-template.ts).
  if (options.seed !== false) await seedEmbeddedDatabase(env);
  const command = options.main ? [options.main, 'serve'] : ['--import', 'tsx', MAIN, 'serve'];
  const [file, ...args] = [...(options.wrapper ?? []), process.execPath, ...command];
  const child = spawn(file!, args, {
    env: { ...process.env, REGISTRY_HTTP_ADDR: '127.0.0.1:0', REGISTRY_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), timeoutMs);
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'signet is listening') {
          clearTimeout(timer);
          resolve(`http://${String(entry.addr)}`);
        }
      } catch {
        // not a log line
      }
    });
  });
  // Known now, while the server is their parent: a server that exits on its own orphans them.
  const startedWith = child.pid === undefined ? [] : descendants(child.pid);
  return {
    url,
    child,
    logs,
    stderr: () => stderr,
    async kill(signal = 'SIGKILL') {
      const family = new Set([...startedWith, ...(child.pid === undefined ? [] : descendants(child.pid))]);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      await waitGone([...family], 20_000);
      return code;
    },
  };
}
