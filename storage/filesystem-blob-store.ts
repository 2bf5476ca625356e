// Blob store on a local filesystem. Writes go to a temporary file under the same root, are fsynced
// and renamed into place, so an object is either complete or absent, also after a crash. A rename
// (and a directory made for it) is durable only once the directory holding the new entry is
// fsynced too: without that, a power loss can take a blob whose database row committed.
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, rmdir, stat, truncate, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type {
  BlobStore,
  DebrisReport,
  InPlaceAppends,
  LocalDebris,
  ObjectReader,
  ObjectStat,
  PositionalReads,
  ReadOptions,
} from './blob-store.js';
import {
  FILE_SYSTEM_REASONS,
  FileSystemRefusalError,
  InvalidStorageKeyError,
  isErrno,
  isNoSpace,
  StorageFullError,
  StorageNotFoundError,
} from './errors.js';
import { createFileSink } from './file-sink.js';
import { UPLOADS_TREE } from './paths.js';

const TMP_DIR = '_tmp';
const KEY_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

export interface FilesystemBlobStoreOptions {
  rootDirectory: string;
  /** Write large objects past the page cache with O_DIRECT (see file-sink.ts); default true. */
  directIo?: boolean;
}

/**
 * Makes the root (as the first push would) and writes a file into it once, which throws where the
 * registry cannot write (a volume mounted read-only or owned by another user, a path through a
 * file). The server calls it before it starts (server/preflight.ts): found by the first push
 * instead, such a root was a 500 "unknown error" from a registry that reported itself ready.
 */
export async function checkWritableRoot(rootDirectory: string): Promise<void> {
  const tmpRoot = path.join(path.resolve(rootDirectory), TMP_DIR);
  await mkdir(tmpRoot, { recursive: true });
  const probe = path.join(tmpRoot, `write-check-${randomUUID()}`);
  await writeFile(probe, 'signet');
  await unlink(probe);
}

export function createFilesystemBlobStore(options: FilesystemBlobStoreOptions): BlobStore & PositionalReads & InPlaceAppends & LocalDebris {
  const root = path.resolve(options.rootDirectory);
  const sinkOptions = { directIo: options.directIo ?? true };
  const tmpRoot = path.join(root, TMP_DIR);
  /** Names of the temporary files this process is writing: never debris, whatever their age. */
  const writing = new Set<string>();
  // Made once, not before every write (a system call per blob pushed).
  let tmpReady: Promise<unknown> | undefined;

  // Keys come from storage/paths.ts, but the store refuses anything that could leave its root.
  function toPath(key: string): string {
    const segments = key.split('/');
    if (segments.some((s) => !KEY_SEGMENT_RE.test(s) || s === '.' || s === '..') || segments[0] === TMP_DIR) {
      throw new InvalidStorageKeyError(key);
    }
    return path.join(root, ...segments);
  }

  // Directories exist only to hold objects: an emptied one (an upload's, a blob prefix's) goes, up
  // to the top-level trees, so finished uploads leave no directories behind.
  async function pruneEmptyParents(dir: string): Promise<void> {
    let current = dir;
    while (path.dirname(current) !== root && current.startsWith(root + path.sep)) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or already gone): stop
      }
      current = path.dirname(current);
    }
  }

  // Directories renamed into lately. A blob's directory (one of 256 per algorithm) nearly always
  // exists, and a recursive mkdir of an existing one costs two system calls (mkdir, then a stat on
  // EEXIST): for these the rename goes first and the directory is made only if it is missing.
  const knownDirs = new Set<string>();

  const syncDirectory = createDirectorySync();

  /** Makes `dir` and whatever it lacks above it, each new directory's entry fsynced in its parent. */
  async function makeDirectory(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true });
    if (first === undefined) return;
    // Every directory from the first one made down to `dir` is a new entry in its parent.
    const parents: string[] = [];
    for (let made = dir; made.startsWith(first) && made !== path.dirname(made); made = path.dirname(made)) {
      parents.push(path.dirname(made));
    }
    await Promise.all(parents.map(syncDirectory));
  }

  // A concurrent prune may remove the parent between mkdir and rename: make it again and retry.
  // Resolves once the new name is durable (its directory fsynced).
  async function renameInto(source: string, target: string): Promise<void> {
    const dir = path.dirname(target);
    let makeDir = !knownDirs.has(dir);
    for (let attempt = 0; ; attempt++) {
      if (makeDir) await makeDirectory(dir);
      try {
        await rename(source, target);
        break;
      } catch (err) {
        if (!isNotFound(err) || attempt >= 3 || !(await statPath(source))) throw err;
        makeDir = true;
      }
    }
    await syncDirectory(dir);
    if (knownDirs.size >= 4096) knownDirs.clear();
    knownDirs.add(dir);
  }

  async function statPath(file: string): Promise<ObjectStat | undefined> {
    try {
      const s = await stat(file);
      return s.isFile() ? { size: s.size, modified: s.mtime } : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw asStorageError(err);
    }
  }

  async function openFile(key: string): Promise<{ handle: FileHandle; size: number }> {
    const handle = await open(toPath(key), 'r').catch((err: unknown) => {
      throw isNotFound(err) ? new StorageNotFoundError(key) : asStorageError(err);
    });
    const stats = await handle.stat().catch(async (err: unknown) => {
      await handle.close();
      throw asStorageError(err);
    });
    // A directory (a key that only prefixes others) opens fine but is no object.
    if (!stats.isFile()) {
      await handle.close();
      throw new StorageNotFoundError(key);
    }
    return { handle, size: stats.size };
  }

  return {
    // async, so a refused key rejects like every other failure instead of throwing synchronously.
    async stat(key) {
      return statPath(toPath(key));
    },

    async read(key: string, options: ReadOptions = {}): Promise<Readable> {
      const { handle } = await openFile(key);
      return createReadStream('', {
        fd: handle,
        start: options.start,
        end: options.end,
        signal: options.signal,
        highWaterMark: 256 * 1024,
      });
    },

    async openReader(key: string): Promise<ObjectReader> {
      const { handle, size } = await openFile(key);
      return {
        size,
        async read(buffer, position) {
          // A single read(2) may return less than asked before the end: fill the buffer.
          let filled = 0;
          while (filled < buffer.length) {
            const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
            if (bytesRead === 0) break;
            filled += bytesRead;
          }
          return filled;
        },
        close: () => handle.close(),
      };
    },

    async write(key, body, options = {}) {
      const file = toPath(key);
      await (tmpReady ??= mkdir(tmpRoot, { recursive: true }).catch((err: unknown) => {
        tmpReady = undefined;
        throw asStorageError(err);
      }));
      const name = randomUUID();
      const tmp = path.join(tmpRoot, name);
      writing.add(name);
      try {
        // The sink fsyncs before it finishes, so the rename below never exposes a half-written file.
        await pipeline(body, createFileSink(tmp, sinkOptions), { signal: options.signal });
        // Stat before the rename: afterwards a concurrent write may already have replaced it.
        const written = await statPath(tmp);
        if (!written) throw new StorageNotFoundError(key);
        await renameInto(tmp, file);
        return written;
      } catch (err) {
        // On a file system that refuses writes the removal fails too: the write's error is the one to report.
        await rm(tmp, { force: true }).catch(() => undefined);
        // The temporary directory was removed under us: make it again for the next write.
        if (
          isNotFound(err) &&
          !(await stat(tmpRoot).then(
            () => true,
            () => false,
          ))
        )
          tmpReady = undefined;
        throw asStorageError(err);
      } finally {
        writing.delete(name);
      }
    },

    async move(from, to) {
      const source = toPath(from);
      const target = toPath(to);
      // rename() would also move a directory: only a file is an object.
      if (!(await statPath(source))) throw new StorageNotFoundError(from);
      try {
        await renameInto(source, target);
      } catch (err) {
        if (isNotFound(err)) throw new StorageNotFoundError(from);
        throw asStorageError(err);
      }
      // A moved-out upload chunk leaves its upload's directory empty: it goes now, not never.
      await pruneEmptyParents(path.dirname(source));
    },

    async append(key, at, body, options = {}) {
      const file = toPath(key);
      // The caller (storage/blobs.ts) runs one append per object at a time: the length checked
      // here is still the length when the sink opens the file.
      if ((await statPath(file))?.size !== at) return undefined;
      try {
        await pipeline(body, createFileSink(file, { ...sinkOptions, at }), { signal: options.signal });
      } catch (err) {
        throw asStorageError(err);
      }
      const written = await statPath(file);
      if (!written) throw new StorageNotFoundError(key);
      return written;
    },

    async truncate(key, size) {
      try {
        await truncate(toPath(key), size);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },

    async delete(key) {
      const file = toPath(key);
      try {
        await unlink(file);
      } catch (err) {
        // EISDIR: a key that only prefixes others is no object, so there is nothing to remove.
        if (!isNotFound(err) && !isErrno(err, 'EISDIR')) throw err;
        return;
      }
      await pruneEmptyParents(path.dirname(file));
    },

    async removeDebris(olderThan, { dryRun = false } = {}) {
      const report: DebrisReport = { files: 0, bytes: 0, directories: 0 };
      // This process's writes in progress are known; another process's (a replica sharing the
      // directory) keeps writing to its file, so only old files are cut-off writes.
      for (const name of await readdir(tmpRoot).catch(() => [] as string[])) {
        if (writing.has(name)) continue;
        const file = path.join(tmpRoot, name);
        const s = await lstat(file).catch(() => undefined);
        if (!s?.isFile() || s.mtime >= olderThan) continue;
        if (
          !dryRun &&
          !(await unlink(file).then(
            () => true,
            () => false,
          ))
        )
          continue;
        report.files += 1;
        report.bytes += s.size;
      }
      // An upload's directory goes with its last object; a crash between the two, or a version
      // that did not prune after a move, left it empty. A write racing this makes it again.
      const uploads = toPath(UPLOADS_TREE);
      for (const name of await readdir(uploads).catch(() => [] as string[])) {
        const dir = path.join(uploads, name);
        const s = await lstat(dir).catch(() => undefined);
        if (!s?.isDirectory() || s.mtime >= olderThan) continue;
        if ((await readdir(dir).catch(() => [''])).length > 0) continue;
        if (
          !dryRun &&
          !(await rmdir(dir).then(
            () => true,
            () => false,
          ))
        )
          continue;
        report.directories += 1;
      }
      return report;
    },

    async *list(prefix) {
      const slash = prefix.lastIndexOf('/');
      const dirKey = slash < 0 ? '' : prefix.slice(0, slash);
      const namePrefix = prefix.slice(slash + 1);
      const dir = dirKey === '' ? root : toPath(dirKey);
      yield* walk(dir, dirKey, namePrefix);
    },
  };

  async function* walk(dir: string, dirKey: string, namePrefix: string): AsyncGenerator<string> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isNotFound(err) || isNotDirectory(err)) return;
      throw err;
    }
    for (const entry of entries) {
      if (!entry.name.startsWith(namePrefix)) continue;
      if (dirKey === '' && entry.name === TMP_DIR) continue;
      const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
      if (entry.isDirectory()) yield* walk(path.join(dir, entry.name), key, '');
      else if (entry.isFile()) yield key;
    }
  }
}

/**
 * fsync of a directory, shared by the renames that wait for it: a rename joins the next sync to
 * start after it, never one that may have started before it. Concurrent writes into one directory
 * (every upload chunk goes to `uploads/`) then cost one sync between them, not one each.
 */
function createDirectorySync(): (dir: string) => Promise<void> {
  const pending = new Map<string, { running: Promise<void>; next?: Promise<void> }>();
  const start = (dir: string): Promise<void> => {
    const entry: { running: Promise<void>; next?: Promise<void> } = { running: fsyncDirectory(dir) };
    pending.set(dir, entry);
    void entry.running.then(
      () => pending.get(dir) === entry && pending.delete(dir),
      () => pending.get(dir) === entry && pending.delete(dir),
    );
    return entry.running;
  };
  return (dir) => {
    const current = pending.get(dir);
    if (!current) return start(dir);
    const settled = (): Promise<void> => start(dir);
    return (current.next ??= current.running.then(settled, settled));
  };
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems cannot fsync a directory (EINVAL); they order their metadata themselves.
    if (!isErrno(err, 'EINVAL')) throw err;
  } finally {
    await handle.close();
  }
}

/**
 * The errnos of a file system that refuses reads or writes it took before, which the operator must
 * fix: EROFS (ext4's errors=remount-ro after a disk error, or a volume remounted by hand),
 * permissions changed under the registry (a restore or copy made by another user), I/O errors.
 */
const REFUSALS = new Set(['EROFS', 'EACCES', 'EPERM', 'EIO']);

/**
 * A full file system (or a quota reached) is the registry's storage-full error; one that refuses
 * a read or a write (read-only, permissions, I/O errors) is the storage being unavailable, with its
 * reason, instead of a 500 "unknown error". Other objects are served meanwhile where the file
 * system allows.
 */
function asStorageError(err: unknown): unknown {
  if (isNoSpace(err)) return new StorageFullError('storage', undefined, { cause: err });
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !REFUSALS.has(code)) return err;
  return new FileSystemRefusalError(FILE_SYSTEM_REASONS[code]!, { cause: err });
}

function isNotFound(err: unknown): boolean {
  return isErrno(err, 'ENOENT');
}

function isNotDirectory(err: unknown): boolean {
  return isErrno(err, 'ENOTDIR');
}
