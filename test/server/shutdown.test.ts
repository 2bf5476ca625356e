// Graceful shutdown of the real CLI (`signet serve`): on SIGTERM it stops accepting connections,
// lets a request in flight finish, closes the database and exits 0; a request still running
// after REGISTRY_HTTP_DRAINTIMEOUT is cut off. Also: metrics on the debug address.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { openRaw, requestHead } from '../helpers/raw-http.js';
import { sleep, until } from '../helpers/wait.js';

const MAIN = path.resolve('server/main.ts');

interface Cli {
  child: ChildProcess;
  port: number;
  debugPort?: number;
  logs: string[];
  exited: Promise<number | null>;
}

async function startCli(t: { teardown(fn: () => Promise<void>): void }, env: Record<string, string> = {}): Promise<Cli> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-cli-'));
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('REGISTRY_')));
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'serve'], {
    env: {
      ...inherited,
      REGISTRY_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
      REGISTRY_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  let pending = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      if (signal) logs.push(`killed by ${signal}`);
      resolve(code);
    }),
  );
  t.teardown(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  });
  const listening = new Promise<{ addr: string; debugAddr?: string }>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      const text = pending + chunk.toString('utf8');
      const lines = text.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        logs.push(line);
        if (line.includes('"signet is listening"')) resolve(JSON.parse(line) as { addr: string; debugAddr?: string });
      }
    });
    void exited.then((code) => reject(new Error(`signet exited (${code ?? logs.at(-1)}) before listening: ${stderr}`)));
  });
  const { addr, debugAddr } = await listening;
  const port = (s: string): number => Number(s.slice(s.lastIndexOf(':') + 1));
  return { child, port: port(addr), ...(debugAddr ? { debugPort: port(debugAddr) } : {}), logs, exited };
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: Error & { code?: string }) => resolve(err.code === 'ECONNREFUSED'));
  });
}

async function uploadsInProgress(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(/^signet_uploads_in_progress (\S+)$/m.exec(text)?.[1] ?? NaN);
}

test('SIGTERM: the upload in flight finishes, new connections are refused, then exit 0', async (t) => {
  const cli = await startCli(t);
  const base = `http://127.0.0.1:${cli.port}`;
  const location = (await fetch(`${base}/v2/drain/app/blobs/uploads/`, { method: 'POST' })).headers.get('location')!;

  const slow = await openRaw(cli.port, { timeoutMs: 30_000 });
  slow.socket.write(requestHead('PATCH', location, { Host: 'x', 'Content-Length': '30' }));
  slow.socket.write('0123456789');
  t.true(await until(async () => (await uploadsInProgress(base)) === 1, 10_000), 'the upload is streaming');

  cli.child.kill('SIGTERM');
  t.true(await until(() => refusesConnections(cli.port), 10_000), 'new connections are refused');
  t.is(cli.child.exitCode, null, 'still running while the upload is in flight');

  // The rest of the body arrives slowly; the request completes normally.
  for (const part of ['0123456789', '0123456789']) {
    await sleep(300);
    slow.socket.write(part);
  }
  const result = await slow.exchange;
  t.is(result.responses[0]?.status, 202);
  t.is(result.responses[0]?.headers.range, '0-29');
  t.is(await cli.exited, 0);
  t.true(cli.logs.some((l) => l.includes('"shutting down"')));
  t.true(cli.logs.some((l) => l.includes('"stopped"')));
  t.false(
    cli.logs.some((l) => l.includes('"level":50')),
    'no error was logged',
  );
});

test('a request still running after the drain timeout is cut off; metrics on the debug address', async (t) => {
  const cli = await startCli(t, { REGISTRY_HTTP_DRAINTIMEOUT: '1s', REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0' });
  const base = `http://127.0.0.1:${cli.port}`;
  t.truthy(cli.debugPort);
  // Metrics moved to the debug listener, off the public port.
  t.is((await fetch(`${base}/metrics`)).status, 404);
  const debugBase = `http://127.0.0.1:${cli.debugPort}`;
  const location = (await fetch(`${base}/v2/drain/app/blobs/uploads/`, { method: 'POST' })).headers.get('location')!;

  const stalled = await openRaw(cli.port, { timeoutMs: 30_000 });
  stalled.socket.write(requestHead('PATCH', location, { Host: 'x', 'Content-Length': '1000' }));
  stalled.socket.write('0123456789');
  t.true(await until(async () => (await uploadsInProgress(debugBase)) === 1, 10_000));

  const signalled = Date.now();
  cli.child.kill('SIGTERM');
  const result = await stalled.exchange;
  t.true(result.closed);
  t.is(await cli.exited, 0);
  t.true(Date.now() - signalled < 10_000, 'bounded by the drain timeout');
  t.true(cli.logs.some((l) => l.includes('closed connections still open after the drain timeout')));
});
