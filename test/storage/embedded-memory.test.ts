// What the embedded database holds in memory: PostgreSQL's settings (storage/pglite-engine.ts),
// in memory as on disk.
import { mkdtemp, rm } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { openPglite } from '../../storage/pglite-engine.js';

test('a database in memory runs with the settings and value parsers of one on disk', async (t) => {
  const dir = await promisify(mkdtemp)(path.join(os.tmpdir(), 'signet-pglite-'));
  const memory = await openPglite(undefined);
  const disk = await openPglite(path.join(dir, 'db'));
  try {
    const look = async (db: typeof memory) => ({
      settings: (
        await db.query<{ name: string; setting: string }>(
          "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'max_connections', 'fsync') ORDER BY name",
        )
      ).rows,
      // The registry's parsers: bigint as a number, bytea as a Buffer.
      values: (await db.query<{ n: unknown; b: unknown }>("SELECT 9007199254740991::int8 AS n, '\\x0102'::bytea AS b")).rows[0],
    });
    const [inMemory, onDisk] = [await look(memory), await look(disk)];
    t.deepEqual(inMemory, onDisk);
    t.deepEqual(onDisk.settings, [
      { name: 'fsync', setting: 'on' },
      { name: 'max_connections', setting: '5' },
      { name: 'shared_buffers', setting: '1024' },
    ]);
    t.is(onDisk.values?.n, 9007199254740991);
    t.true(Buffer.isBuffer(onDisk.values?.b) && onDisk.values.b.equals(Buffer.from([1, 2])));
  } finally {
    await memory.close();
    await disk.close();
    await promisify(rm)(dir, { recursive: true, force: true });
  }
});
