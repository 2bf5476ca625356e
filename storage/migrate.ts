// Versioned migrations: storage/migrations/NNN_name.sql, applied in order at start-up, each once.
// One transaction holds an advisory lock, so replicas starting together do not race. A file named
// NNN_name.postgres.sql holds what only a PostgreSQL server needs (what replicas share): on the
// embedded PGlite its version is recorded as applied without running it.
import { readdir, readFile } from 'node:fs/promises';
import type { Db } from './db.js';
import { migrationsDirectory } from './own-files.js';

const LOCK_ID = 7_418_251; // arbitrary, fixed: "signet migrations"

export async function migrate(db: Db): Promise<string[]> {
  const files = (await readdir(migrationsDirectory)).filter((f) => /^\d{3}_[a-z0-9_]+(\.postgres)?\.sql$/.test(f)).sort();
  if (await upToDate(db, files)) return [];
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await tx.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version));
    const applied: string[] = [];
    for (const file of files) {
      const version = versionOf(file);
      if (done.has(version)) continue;
      if (db.kind === 'postgres' || !file.endsWith('.postgres.sql')) {
        const sql = await readFile(new URL(file, migrationsDirectory), 'utf8');
        for (const statement of splitStatements(sql)) await tx.query(statement);
      }
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [version, file]);
      applied.push(file);
    }
    return applied;
  });
}

/**
 * Whether every migration is applied already, asked in one statement without the lock: so it is on
 * every start but an upgrade's, and the locked transaction took five round trips to the database
 * while a restarted registry's first requests waited for them (issue 22). A database where a
 * migration is missing, or that has no migrations table yet, takes the locked path.
 */
async function upToDate(db: Db, files: string[]): Promise<boolean> {
  let rows: { version: number }[];
  try {
    rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
  } catch (err) {
    if ((err as { code?: unknown }).code === UNDEFINED_TABLE) return false;
    throw err;
  }
  const done = new Set(rows.map((r) => r.version));
  return files.every((file) => done.has(versionOf(file)));
}

/** SQLSTATE of a statement naming a table that does not exist: a database never migrated. */
const UNDEFINED_TABLE = '42P01';

/** The version a migration file applies: its three-digit prefix. */
function versionOf(file: string): number {
  return Number(file.slice(0, 3));
}

// Statements end with a semicolon at the end of a line, outside a function's $$-quoted body.
function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current = '';
  sql
    .replace(/--.*$/gm, '')
    .split('$$')
    .forEach((part, i) => {
      if (i % 2 === 1) {
        current += `$$${part}$$`;
        return;
      }
      const pieces = part.split(/;\s*$/m);
      current += pieces.shift();
      for (const piece of pieces) {
        statements.push(current);
        current = piece;
      }
    });
  statements.push(current);
  return statements.map((s) => s.trim()).filter((s) => s.length > 0);
}
