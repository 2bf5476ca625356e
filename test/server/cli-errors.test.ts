// The `signet` management commands fail in one line, naming the URL, file or setting concerned and
// what to do, with exit status 1 and no stack trace. Run as a child process, as a user runs them.
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { runExpectingFailure } from '../helpers/run.js';

const MAIN = path.resolve('server/main.ts');

/** The CLI, which must fail: exit code and standard error. SIGNET_* come only from `env`. */
async function signetFails(args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: unknown; stderr: string }> {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('SIGNET_') && !name.startsWith('REGISTRY_')),
  );
  const failure = await runExpectingFailure(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env: { ...inherited, ...env },
    timeoutMs: 120_000,
    ...(input === undefined ? {} : { input }),
  });
  return { code: failure.exitCode, stderr: failure.stderr };
}

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Exactly one line on standard error, starting `signet: `, and exit status 1. */
function oneLine(t: { is(a: unknown, b: unknown, m?: string): void }, result: { code: unknown; stderr: string }): string {
  const lines = result.stderr.trimEnd().split('\n');
  t.is(lines.length, 1, result.stderr);
  t.is(result.code, 1);
  return lines[0] ?? '';
}

test('no registry at the URL: one line naming it, and how to point at another', async (t) => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const line = oneLine(t, await signetFails(['--registry', url, 'project', 'list']));
  t.is(
    line,
    `signet: cannot reach the registry at ${url}: connection refused; is it running? Give its address with --registry or SIGNET_REGISTRY`,
  );
  const viaEnv = oneLine(t, await signetFails(['repo', 'list', 'team'], { SIGNET_REGISTRY: url }));
  t.regex(viaEnv, new RegExp(`cannot reach the registry at ${url}: connection refused`));
});

test('a registry URL without a scheme says how to write it', async (t) => {
  const line = oneLine(t, await signetFails(['--registry', 'localhost:5000', 'project', 'list']));
  t.is(line, 'signet: --registry (or SIGNET_REGISTRY) localhost:5000 is not a URL: write http://localhost:5000 or https://localhost:5000');
  const bare = oneLine(t, await signetFails(['--registry', 'registry.example.com', 'project', 'list']));
  t.regex(bare, /write http:\/\/registry\.example\.com or https:\/\/registry\.example\.com$/);
});

test('a missing key file or signature folder: one line naming it', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-cli-errors-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const url = `http://127.0.0.1:${await closedPort()}`;
  const key = path.join(dir, 'key.gpg');
  t.is(
    oneLine(t, await signetFails(['--registry', url, 'key', 'add', 'team', key])),
    `signet: cannot read key file ${key}: does not exist`,
  );
  const folder = path.join(dir, 'sigstore');
  t.is(
    oneLine(t, await signetFails(['--registry', url, 'signatures', 'import', folder])),
    `signet: cannot read signature folder ${folder}: does not exist`,
  );
  t.is(
    oneLine(t, await signetFails(['--registry', url, 'key', 'add', 'team', dir])),
    `signet: cannot read key file ${dir}: is a directory, not a file`,
  );
});

test('--user without a password says so, and how to give one', async (t) => {
  const url = `http://127.0.0.1:${await closedPort()}`;
  const line = oneLine(t, await signetFails(['--registry', url, '--user', 'alice', 'project', 'list']));
  t.is(line, 'signet: no password given for user alice: set SIGNET_PASSWORD, or pipe it to --password-stdin');
  t.is(oneLine(t, await signetFails(['--registry', url, 'project', 'list'], { SIGNET_USER: 'alice' })), line);
  const empty = oneLine(t, await signetFails(['--registry', url, '--user', 'alice', '--password-stdin', 'project', 'list'], {}, '\n'));
  t.is(empty, 'signet: --password-stdin read no password from standard input');
});
