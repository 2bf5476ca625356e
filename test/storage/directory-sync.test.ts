// Durability of the filesystem store's renames, seen in the system calls it makes (strace): an
// object renamed into place is durable only once the directory holding its new name is fsynced,
// and a directory made for it only once its parent is. Without those, a power loss can take a
// blob whose database row committed.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { testWithCommands } from '../helpers/env.js';

const run = promisify(execFile);
const test = testWithCommands('directory fsync', ['strace']);

interface Trace {
  lines: string[];
  /** Index of the first line where `pattern` occurs at or after `from`; -1 when none. */
  find(pattern: (line: string) => boolean, from?: number): number;
}

async function traceProbe(t: {
  teardown(fn: () => Promise<void>): void;
}): Promise<{ root: string; keys: Record<string, string>; trace: Trace }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-dirsync-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  const out = path.join(dir, 'strace.txt');
  const probe = path.resolve('test/storage/fs-sync-probe.ts');
  // -f: the fsyncs run on libuv's threads; -y: file descriptors shown with their paths.
  const { stdout } = await run(
    'strace',
    [
      '-f',
      '-y',
      '-e',
      'trace=rename,renameat,renameat2,mkdir,mkdirat,fsync,fdatasync',
      '-o',
      out,
      process.execPath,
      '--import',
      'tsx',
      probe,
      root,
    ],
    {
      timeout: 60_000,
    },
  );
  const lines = (await readFile(out, 'utf8')).split('\n');
  return {
    root,
    keys: JSON.parse(stdout) as Record<string, string>,
    trace: { lines, find: (pattern, from = 0) => lines.findIndex((line, i) => i >= from && pattern(line)) },
  };
}

/** An fsync of the directory itself (`fsync(7</path/to/dir>)`), not of a file in it. */
const fsyncOf = (dir: string) => (line: string) =>
  /\bf(?:data)?sync\(/.test(line) && (line.includes(`<${dir}>)`) || line.includes(`<${dir}> <unfinished`));

test('a rename into place is followed by an fsync of the directory holding the new name', async (t) => {
  const { root, keys, trace } = await traceProbe(t);
  for (const key of [keys.written!, keys.chunk!, keys.moved!]) {
    const target = path.join(root, key);
    const renamed = trace.find((line) => /\brename/.test(line) && line.includes(`"${target}"`));
    t.true(renamed >= 0, `rename to ${key} traced`);
    t.true(trace.find(fsyncOf(path.dirname(target)), renamed + 1) > renamed, `${path.dirname(key)} fsynced after the rename to ${key}`);
  }
});

test('a directory made for an object is followed by an fsync of its parent', async (t) => {
  const { root, trace } = await traceProbe(t);
  const made = trace.lines
    .map((line, i) => ({ i, match: /\bmkdir(?:at)?\((?:AT_FDCWD(?:<[^>]*>)?, )?"([^"]+)".*= 0$/.exec(line) }))
    .filter((m): m is { i: number; match: RegExpExecArray } => m.match !== null)
    .map(({ i, match }) => ({ i, dir: match[1]! }))
    // The temporary directory holds no object: its entry need not be durable.
    .filter(({ dir }) => dir.startsWith(`${root}/`) && !dir.startsWith(path.join(root, '_tmp')));
  t.true(
    made.some(({ dir }) => dir.startsWith(path.join(root, 'blobs'))),
    'the probe made blob directories',
  );
  for (const { i, dir } of made) {
    t.true(
      trace.find(fsyncOf(path.dirname(dir)), i + 1) > i,
      `${path.relative(root, path.dirname(dir)) || '(root)'} fsynced after ${path.relative(root, dir)} was made`,
    );
  }
});
