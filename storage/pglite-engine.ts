// Opening PGlite (PostgreSQL compiled to WebAssembly) the one way this registry runs it: used by
// the database worker (storage/pglite-worker.ts) and by the one-off initdb process
// (storage/pglite-process.ts).
import type { PGlite } from '@electric-sql/pglite';

export async function openPglite(dataDirectory: string | undefined): Promise<PGlite> {
  const { PGlite, types } = await import('@electric-sql/pglite');
  // int8 values we store (sizes, offsets, ids) fit a double: numbers, as the pg back end gives.
  const parsers = { [types.INT8]: (value: string) => Number(value) };
  // PostgreSQL's default 128 MB of shared buffers would be resident here; registry metadata needs
  // far less. 16 MB: about 130 MB less RSS (bench/).
  const startParams = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];
  const db = new PGlite(dataDirectory, { parsers, startParams });
  await db.waitReady;
  return db;
}
