// Durability of the filesystem store's renames, seen in the system calls it makes (strace): an
// object renamed into place is durable only once the directory holding its new name is fsynced,
// and a directory made for it only once its parent is. Without those, a power loss can take a
// blob whose database row committed. And a large object's data is flushed while it is written,
// yet never published before an fdatasync that began after its last write.
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
      'trace=rename,renameat,renameat2,mkdir,mkdirat,fsync,fdatasync,pwrite64,write,pwritev',
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

test('a large object is flushed while it is written, and once more after its last write, before it is published', async (t) => {
  const { root, keys, trace } = await traceProbe(t);
  const target = path.join(root, keys.large!);
  const renamed = trace.find((line) => /\brename/.test(line) && line.includes(`"${target}"`));
  t.true(renamed >= 0, 'the large object was renamed into place');
  // The temporary file it was written to: the rename's source.
  const source = /rename(?:at2?)?\((?:AT_FDCWD(?:<[^>]*>)?, )?"([^"]+)"/.exec(trace.lines[renamed]!)?.[1];
  t.truthy(source, 'the rename names its source');
  const pidOf = (line: string) => line.split(' ', 1)[0];
  const isWrite = (line: string) => /\b(?:pwrite64|write|pwritev)\(\d+</.test(line) && line.includes(`<${source}>`);
  const isSync = (line: string) => /\bf(?:data)?sync\(\d+</.test(line) && line.includes(`<${source}>`);
  const writes = trace.lines.flatMap((line, i) => (isWrite(line) ? [i] : []));
  const syncs = trace.lines.flatMap((line, i) => (isSync(line) ? [i] : []));
  t.true(writes.length >= 9, `the 9 MiB went in ${writes.length} writes`);
  // Where the last write returned: its own line, or its "resumed" line on the same thread.
  const last = writes.at(-1)!;
  const returned = trace.lines[last]!.includes('<unfinished')
    ? trace.find((line) => pidOf(line) === pidOf(trace.lines[last]!) && line.includes('resumed>'), last + 1)
    : last;
  t.true(returned > 0, 'the last write returned');
  t.true(
    syncs.some((i) => i < last),
    'an fdatasync of the file ran before its last write (flushed while it streamed)',
  );
  t.true(
    syncs.some((i) => i > returned && i < renamed),
    'an fdatasync of the file began after its last write returned and before the rename into place',
  );
});
