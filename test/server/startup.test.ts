// `signet serve` at start-up, run as a child process as an operator runs it: a misconfiguration
// refuses the start with one line per problem, naming the setting and what to do, never a stack
// trace; unknown names are warned about in the log; nothing is left running after a refusal.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { loadConfig } from '../../server/config.js';
import { preflight } from '../../server/preflight.js';
import { runExpectingFailure } from '../helpers/run.js';
import { startServerProcess } from '../helpers/server-process.js';

const MAIN = path.resolve('server/main.ts');

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-startup-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** `signet serve` that must fail: its exit code and standard error. */
async function serveFails(dir: string, env: Record<string, string>): Promise<{ code: unknown; stderr: string }> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('REGISTRY_')));
  const failure = await runExpectingFailure(process.execPath, ['--import', 'tsx', MAIN, 'serve'], {
    env: {
      ...inherited,
      REGISTRY_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
      ...env,
    },
    timeoutMs: 180_000,
  });
  return { code: failure.exitCode, stderr: failure.stderr };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const NO_STACK = /^\s+at /m;

test('a missing or unreadable htpasswd file refuses to start, naming the variable, before anything is opened', async (t) => {
  const dir = await tempDir(t);
  await mkdir(path.join(dir, 'a-directory'));
  for (const [file, reason] of [
    [path.join(dir, 'missing', 'htpasswd'), 'does not exist'],
    [path.join(dir, 'a-directory'), 'is a directory, not a file'],
  ] as const) {
    const { code, stderr } = await serveFails(dir, { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: file });
    t.is(code, 2);
    t.regex(stderr, new RegExp(`REGISTRY_AUTH_HTPASSWD_PATH: cannot read ${file}: ${reason}; create it with: htpasswd -Bc ${file} <user>`));
    t.notRegex(stderr, NO_STACK);
  }
  t.false(existsSync(path.join(dir, 'database')), 'refused before the database was created');
});

test('a storage root the registry cannot write refuses to start, naming the variable, before anything is opened', async (t) => {
  // Found by the first push instead, it was a 500 "unknown error" from a registry that said it was ready.
  const dir = await tempDir(t);
  const file = path.join(dir, 'a-file');
  await writeFile(file, 'not a directory\n');
  const root = path.join(file, 'storage');
  const { code, stderr } = await serveFails(dir, { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root });
  t.is(code, 2);
  t.regex(stderr, new RegExp(`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: cannot write to ${root}: a part of the path is not a directory`));
  t.notRegex(stderr, NO_STACK);
  t.false(existsSync(path.join(dir, 'database')), 'refused before the database was created');

  // A writable root passes and keeps nothing of the check; read-only mode writes nothing at all.
  const writable = path.join(dir, 'storage');
  t.deepEqual((await preflight(loadConfig({ env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: writable } }))).problems, []);
  t.deepEqual(await readdir(path.join(writable, '_tmp')), []);
  const readOnly = loadConfig({
    env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: root, REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true' },
  });
  t.deepEqual((await preflight(readOnly)).problems, []);
});

test('an htpasswd file whose entries are not bcrypt is named at start-up', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'htpasswd');
  // `htpasswd -bn` without -B writes MD5 (apr1), which the Go registry and Signet refuse at login.
  await writeFile(file, '# users\nalice:$apr1$xnxYmr0O$S4HXd0ACkZkpp40YCw/lW/\n');
  const config = loadConfig({
    env: {
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: file,
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
    },
  });
  const { problems, notes } = await preflight(config);
  t.deepEqual(problems, []);
  t.deepEqual(
    notes.map((n) => [n.level, n.msg, n.fields.users]),
    [
      ['warn', 'htpasswd entries that are not bcrypt are ignored (write them with htpasswd -B)', ['alice']],
      ['warn', 'the htpasswd file has no bcrypt entry: nobody can log in', undefined],
    ],
  );
});

test('TLS files: a missing one or a pair that does not match refuses to start, by variable', async (t) => {
  const dir = await tempDir(t);
  const cert = path.join(dir, 'cert.pem');
  await writeFile(cert, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
  const missing = await serveFails(dir, { REGISTRY_HTTP_TLS_CERTIFICATE: cert, REGISTRY_HTTP_TLS_KEY: path.join(dir, 'key.pem') });
  t.is(missing.code, 2);
  t.regex(missing.stderr, new RegExp(`REGISTRY_HTTP_TLS_KEY: cannot read ${dir}/key.pem: does not exist`));
  t.notRegex(missing.stderr, NO_STACK);
  await writeFile(path.join(dir, 'key.pem'), 'not a key\n');
  const { problems } = await preflight(
    loadConfig({
      env: {
        REGISTRY_HTTP_TLS_CERTIFICATE: cert,
        REGISTRY_HTTP_TLS_KEY: path.join(dir, 'key.pem'),
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      },
    }),
  );
  t.is(problems.length, 1);
  t.regex(problems[0] ?? '', /^REGISTRY_HTTP_TLS_CERTIFICATE, REGISTRY_HTTP_TLS_KEY: .* are not a PEM certificate and its private key: /);
});

test('a misspelt REGISTRY_AUTH or a certificate without its key refuses to start in words', async (t) => {
  const dir = await tempDir(t);
  const auth = await serveFails(dir, { REGISTRY_AUTH: 'htpassword', REGISTRY_AUTH_HTPASSWD_PATH: '/etc/htpasswd' });
  t.is(auth.code, 2);
  t.regex(auth.stderr, /REGISTRY_AUTH: unknown authentication scheme "htpassword" \(did you mean htpasswd\?\); accepted: htpasswd/);
  const tls = await serveFails(dir, { REGISTRY_HTTP_TLS_CERTIFICATE: '/etc/signet/cert.pem' });
  t.is(tls.code, 2);
  t.regex(tls.stderr, /REGISTRY_HTTP_TLS_KEY: missing: HTTPS needs both REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY/);
  t.notRegex(tls.stderr, /Invalid input|received undefined/);
});

test('a wrong REGISTRY_DATABASE_URL is one line naming the variable, without the password', async (t) => {
  const dir = await tempDir(t);
  const url = `postgres://signet:hunter2@127.0.0.1:${await closedPort()}/signet`;
  const { code, stderr } = await serveFails(dir, { REGISTRY_DATABASE_URL: url });
  t.is(code, 1);
  t.is(stderr.trim().split('\n').length, 1, stderr);
  t.regex(
    stderr,
    /^signet: cannot use the PostgreSQL database of REGISTRY_DATABASE_URL \(postgres:\/\/signet:\*\*\*@127\.0\.0\.1:\d+\/signet\): connection refused; /,
  );
  t.false(stderr.includes('hunter2'));
});

test('unknown variables are warned about at start-up; a taken port is one line naming REGISTRY_HTTP_ADDR, and leaves nothing running', async (t) => {
  const dir = await tempDir(t);
  // A generous start-up allowance: a loaded 2-core machine.
  const first = await startServerProcess(
    {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'first', 'storage'),
      REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'first', 'database'),
      REGISTRY_LOG_LEVLE: 'debug',
      REGISTRY_PORT: 'tcp://10.96.0.11:5000',
      REGISTRY_SERVICE_HOST: '10.96.0.11',
    },
    240_000,
  );
  t.teardown(() => first.kill('SIGTERM'));
  const warnings = first.logs.filter((line) => line.msg === 'unknown setting ignored');
  t.deepEqual(
    warnings.map((line) => [line.level, line.setting, line.nearest]),
    [[40, 'REGISTRY_LOG_LEVLE', 'REGISTRY_LOG_LEVEL']],
    'one warning; the Kubernetes service links are not warned about',
  );

  const { code, stderr } = await serveFails(path.join(dir, 'second'), { REGISTRY_HTTP_ADDR: first.url.replace('http://', '') });
  t.is(code, 1);
  t.is(
    stderr.trim(),
    `signet: cannot listen on REGISTRY_HTTP_ADDR=${first.url.replace('http://', '')}: the port is taken (another registry running?); stop that process or choose another port`,
  );
});
