// The documented ways to run Signet, run as documented: `npm start`, which service managers and
// scripts stop by its PID, and `bin/signet`, which works from any directory and through a link.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { testWithCommands } from '../helpers/env.js';
import { run } from '../helpers/run.js';
import { childPids } from '../helpers/server-process.js';
import { until } from '../helpers/wait.js';

const test = testWithCommands('npm start and bin/signet', ['npm']);
const ROOT = path.resolve('.');

interface Started {
  npm: ChildProcess;
  url: string;
  /** Every process under npm once the registry is ready: node (the registry) and its database. */
  family: number[];
  exited: Promise<number | null>;
}

function descendants(pid: number): number[] {
  return childPids(pid).flatMap((child) => [child, ...descendants(child)]);
}

/** Exists and is not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function npmStart(t: { teardown(fn: () => Promise<void> | void): void }, args: string[] = []): Promise<Started> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-npm-start-'));
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('REGISTRY_') && !name.startsWith('MALLOC_')),
  );
  const npm = spawn('npm', ['start', ...args], {
    cwd: ROOT,
    env: {
      ...inherited,
      REGISTRY_HTTP_ADDR: '127.0.0.1:0',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
      REGISTRY_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  npm.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  let family: number[] = [];
  t.teardown(async () => {
    for (const pid of [npm.pid ?? 0, ...family].filter(running)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  const url = await new Promise<string>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`npm start exited with ${code}: ${stderr}`)));
    createInterface({ input: npm.stdout }).on('line', (line) => {
      if (!line.includes('"signet is listening"')) return;
      resolve(`http://${String((JSON.parse(line) as { addr: string }).addr)}`);
    });
  });
  // It listens while the embedded database starts (server/serve.ts); once /readyz says it is
  // open, initdb's process (on a fresh directory) is gone and the family is what keeps running.
  if (!(await until(async () => (await fetch(`${url}/readyz`)).status === 200, 120_000))) throw new Error('never ready');
  family = descendants(npm.pid!);
  return { npm, url, family, exited };
}

test.serial('npm start: SIGTERM to its PID stops the registry and its database; bin/signet works from any directory', async (t) => {
  const started = await npmStart(t);
  t.is(started.family.length, 1, 'npm runs node itself (the script execs it); the embedded database is a thread of it');
  // glibc's allocator settings unless the environment says otherwise (README "Memory and garbage collection").
  const environ = readFileSync(`/proc/${started.family[0]!}/environ`, 'utf8').split('\0');
  t.true(environ.includes('MALLOC_ARENA_MAX=2'));
  t.true(environ.includes('MALLOC_TRIM_THRESHOLD_=4194304'));

  // bin/signet, from another directory, by path and through a link on PATH.
  const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'signet-elsewhere-'));
  t.teardown(() => rm(elsewhere, { recursive: true, force: true }));
  const created = await run(path.join(ROOT, 'bin', 'signet'), ['--registry', started.url, 'project', 'create', 'team'], { cwd: elsewhere });
  t.regex(created.stdout, /created private project team/);
  await mkdir(path.join(elsewhere, 'bin'));
  await symlink(path.join(ROOT, 'bin', 'signet'), path.join(elsewhere, 'bin', 'signet'));
  const env = { ...process.env, PATH: `${path.join(elsewhere, 'bin')}:${process.env.PATH ?? ''}` };
  const listed = await run('sh', ['-c', `signet --registry ${started.url} project list`], { cwd: elsewhere, env });
  t.regex(listed.stdout, /team\s+private/);

  started.npm.kill('SIGTERM');
  t.is(await started.exited, 0, 'npm reports the registry stopped cleanly');
  t.true(await until(() => !started.family.some(running), 30_000), `still running: ${started.family.filter(running).join(', ')}`);
});

test.serial('npm start: a SIGKILLed npm takes the registry and its database with it', async (t) => {
  // --ignore-scripts skips the prestart build, which the test before has just run.
  const started = await npmStart(t, ['--ignore-scripts']);
  started.npm.kill('SIGKILL');
  await started.exited;
  t.true(await until(() => !started.family.some(running), 30_000), `still running: ${started.family.filter(running).join(', ')}`);
});

test('npm start, bin/signet, the container image and the built CLI run node with the same flags and malloc settings', (t) => {
  const flags = (text: string, pattern: RegExp): string => (pattern.exec(text)?.[1] ?? '').replace(/["\s,]+/g, ' ').trim();
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  const signet = readFileSync(path.join(ROOT, 'bin', 'signet'), 'utf8');
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const start = flags(
    pkg.scripts.start,
    /^MALLOC_ARENA_MAX=\$\{MALLOC_ARENA_MAX:-2\} MALLOC_TRIM_THRESHOLD_=\$\{MALLOC_TRIM_THRESHOLD_:-4194304\} exec node (.*) dist\/server\/main\.js serve$/,
  );
  t.true(start.startsWith('--'), pkg.scripts.start);
  t.is(flags(signet, /^exec node (.*) "\$main" "\$@"$/m), start);
  t.is(flags(dockerfile, /^ENTRYPOINT \["node", (.*), "dist\/server\/main\.js"\]$/m), start);
  t.is(flags(readFileSync(path.join(ROOT, 'server', 'main.ts'), 'utf8'), /^#!\/usr\/bin\/env -S node (.*)$/m), start);
  // The same malloc defaults where a shell or the image sets the environment (the built CLI's
  // `env -S` line cannot give a default without overriding what the caller set).
  t.regex(signet, /^export MALLOC_ARENA_MAX="\$\{MALLOC_ARENA_MAX:-2\}"$/m);
  t.regex(signet, /^export MALLOC_TRIM_THRESHOLD_="\$\{MALLOC_TRIM_THRESHOLD_:-4194304\}"$/m);
  t.regex(dockerfile, /^ENV MALLOC_ARENA_MAX=2$/m);
  t.regex(dockerfile, /^ENV MALLOC_TRIM_THRESHOLD_=4194304$/m);
});
