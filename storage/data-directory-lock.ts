// One data directory is never opened by two databases: two PostgreSQL engines writing the same
// files would corrupt them. A lock file in the directory names the owning process (its pid and
// start time, so a pid reused after a crash or reboot is not mistaken for the owner); inside one
// process, a set of the directories this process holds.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isErrno } from './errors.js';
import { LOCK_FILE } from './pglite-protocol.js';

const LOCK_WAIT_MS = 15_000;
const heldHere = new Set<string>();

/** The kernel's start time of a process (clock ticks since boot), undefined where unknown. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

/** Whether the process a lock file names still holds the directory. */
function ownerHolds(content: string): boolean {
  const [pidText, started] = content.trim().split(/\s+/);
  const pid = Number.parseInt(pidText ?? '', 10);
  if (!Number.isInteger(pid) || pid === process.pid || !alive(pid)) return false;
  if (started !== undefined) {
    const now = startTime(pid);
    return now === undefined ? process.platform !== 'linux' : now === started;
  }
  // A lock file of an earlier version names its database child process.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pglite-process');
  } catch {
    return process.platform !== 'linux';
  }
}

/**
 * Takes the directory's lock, waiting for a previous owner that is still shutting down; returns
 * the function that gives it back.
 */
export async function lockDataDirectory(dataDirectory: string): Promise<() => void> {
  const directory = path.resolve(dataDirectory);
  if (heldHere.has(directory)) throw new Error(`database directory ${directory} is in use by this process already`);
  const file = path.join(directory, LOCK_FILE);
  const deadline = Date.now() + LOCK_WAIT_MS;
  const content = `${process.pid} ${startTime(process.pid) ?? ''}`.trim() + '\n';
  for (;;) {
    try {
      writeFileSync(file, content, { flag: 'wx' });
      break;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    const owner = readFileSync(file, 'utf8');
    if (!ownerHolds(owner)) {
      unlinkSync(file);
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`database directory ${directory} is in use by another signet process (pid ${owner.trim().split(' ')[0]})`);
    }
    await sleep(100);
  }
  heldHere.add(directory);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    heldHere.delete(directory);
    try {
      if (readFileSync(file, 'utf8') === content) unlinkSync(file);
    } catch {
      // already gone
    }
  };
}
