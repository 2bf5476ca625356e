// Durability of the embedded database, seen in the system calls it makes (strace). PGlite starts
// PostgreSQL with fsync off, and its Emscripten file system has no fsync of its own: a commit the
// registry acknowledged reached the page cache only, so a power loss could take it, or leave the
// WAL and the data files out of step. Each commit must be followed by an fsync of the WAL.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { testWithCommands } from '../helpers/env.js';

const run = promisify(execFile);
const test = testWithCommands('embedded database fsync', ['strace']);

test('each commit is fsynced to the WAL before it is acknowledged, and the new cluster is on disk before use', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-pglite-sync-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const database = path.join(dir, 'database');
  const out = path.join(dir, 'strace.txt');
  // -f: the database runs on a worker thread (and initdb in a child process); -y: paths of fds.
  await run(
    'strace',
    [
      '-f',
      '-y',
      '-e',
      'trace=fsync,fdatasync,stat,newfstatat,statx',
      '-o',
      out,
      process.execPath,
      '--import',
      'tsx',
      path.resolve('test/storage/pglite-sync-probe.ts'),
      database,
    ],
    { timeout: 240_000 },
  );
  const lines = (await readFile(out, 'utf8')).split('\n');
  const walSync = (line: string): boolean => /\bf(?:data)?sync\(\d+<[^>]*\/pg_wal\/[0-9A-F]{24}>\)\s+=\s+0/.test(line);
  const marks = [0, 1, 2].map((i) => lines.findIndex((line) => line.includes(`/committed-${i}"`)));
  t.true(
    marks.every((index) => index > 0),
    'the probe ran its three commits',
  );
  let from = 0;
  for (const [i, mark] of marks.entries()) {
    const synced = lines.slice(from, mark).some(walSync);
    t.true(synced, `commit ${i}: the WAL was fsynced before the statement was answered`);
    from = mark;
  }
  // initdb's files: the control file is fsynced before the database is first opened to serve.
  t.true(
    lines.some((line) => /\bfsync\(\d+<[^>]*\/global\/pg_control>\)\s+=\s+0/.test(line)),
    'pg_control fsynced',
  );
});
