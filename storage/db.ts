// One small query interface over both PostgreSQL back ends: a `pg` pool for a real server and
// PGlite (PostgreSQL compiled to WebAssembly, in-process) as the zero-setup default. Both run the
// same SQL and the same migrations.
import { mkdir } from 'node:fs/promises';
import pg from 'pg';

export interface Queryable {
  query<R extends object = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

export interface Db extends Queryable {
  /** Runs `fn` in one transaction; a thrown error rolls it back. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  readonly kind: 'postgres' | 'pglite';
}

// int8 and numeric come back as strings from pg; every int8 we store (sizes, offsets, ids) fits
// in a double, so read them as numbers in both back ends.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

export function createPostgresDb(connectionString: string, options: { max?: number } = {}): Db {
  const pool = new pg.Pool({ connectionString, max: options.max ?? 10 });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  return {
    kind: 'postgres',
    async query(sql, params) {
      const result = await pool.query(sql, params);
      return result.rows;
    },
    async transaction(fn) {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({
          query: async (sql, params) => (await client.query(sql, params)).rows,
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

export async function createPgliteDb(dataDirectory: string | undefined): Promise<Db> {
  const { PGlite, types } = await import('@electric-sql/pglite');
  if (dataDirectory) await mkdir(dataDirectory, { recursive: true });
  const parsers = { [types.INT8]: (value: string) => Number(value) };
  // PostgreSQL's default 128 MB of shared buffers lives in PGlite's WebAssembly memory, resident in
  // this process; a registry's hot metadata needs far less. 16 MB: about 130 MB less RSS (bench/).
  const startParams = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];
  const db = new PGlite(dataDirectory, { parsers, startParams });
  await db.waitReady;
  const normalize = <R>(rows: unknown[]): R[] => rows.map((row) => normalizeRow(row as Record<string, unknown>)) as R[];
  return {
    kind: 'pglite',
    async query(sql, params) {
      const result = await db.query(sql, params);
      return normalize(result.rows);
    },
    transaction(fn) {
      return db.transaction(async (tx) =>
        fn({ query: async (sql, params) => normalize((await tx.query(sql, params)).rows) }),
      );
    },
    close: () => db.close(),
  };
}

// PGlite returns bytea as Uint8Array; make it a Buffer as pg does.
function normalizeRow(row: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(row)) {
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
      row[key] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return row;
}
