// A freshly created embedded database cluster, made once per machine and copied into each test's
// data directory. Creating a cluster (PGlite's initdb) costs 6-7 s of CPU; most tests start a
// registry on an empty data directory, and paid it each time. The copy is what the registry's own
// start-up made (createPgliteDb: initdb, then an open and a clean close), so the registry under
// test then runs its usual start on an existing cluster: migrations, worker, CHECKPOINT.
//
// Tests of the creation itself (the start command on a fresh machine, embedded-db, durability)
// keep starting on empty directories.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPgliteDb } from '../../storage/db.js';
import { isErrno } from '../../storage/errors.js';
import { LOCK_FILE } from '../../storage/pglite-protocol.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Keyed by the engine's version and the code that creates and opens clusters. */
function templateKey(): string {
  const hash = createHash('sha256');
  hash.update(readFileSync(path.join(root, 'node_modules/@electric-sql/pglite/package.json')));
  for (const file of ['storage/pglite-engine.ts', 'storage/pglite-process.ts']) hash.update(readFileSync(path.join(root, file)));
  return hash.digest('hex').slice(0, 16);
}

let made: Promise<string> | undefined;

/** The template's directory, created on first use (two test processes may race: one rename wins). */
function template(): Promise<string> {
  made ??= (async () => {
    const dir = path.join(os.tmpdir(), `signet-test-cluster-${templateKey()}`);
    if (existsSync(path.join(dir, 'PG_VERSION'))) return dir;
    const scratch = await mkdtemp(path.join(os.tmpdir(), 'signet-test-cluster-new-'));
    const db = await createPgliteDb(scratch);
    await db.close();
    await rm(path.join(scratch, LOCK_FILE), { force: true });
    try {
      await rename(scratch, dir);
    } catch {
      // Another process published one first.
      await rm(scratch, { recursive: true, force: true });
    }
    return dir;
  })();
  return made;
}

/**
 * For a registry about to start with these settings on the embedded database: puts a fresh
 * cluster into its data directory (created if missing). Nothing for PostgreSQL.
 */
export async function seedEmbeddedDatabase(env: Record<string, string | undefined>): Promise<void> {
  const dataDirectory = env.REGISTRY_DATABASE_DATADIRECTORY;
  if (!dataDirectory || env.REGISTRY_DATABASE_URL) return;
  // Only a missing or empty directory: whatever else a test put there (a file, a broken cluster,
  // an unwritable parent) is what that test is about, and the registry must meet it as it is.
  const entries = await readdir(dataDirectory).catch((err: unknown) => (isErrno(err, 'ENOENT') ? [] : undefined));
  if (entries === undefined || entries.length > 0) return;
  const source = await template();
  try {
    await mkdir(path.dirname(dataDirectory), { recursive: true });
    await cp(source, dataDirectory, { recursive: true });
  } catch {
    await rm(dataDirectory, { recursive: true, force: true }).catch(() => undefined);
  }
}
