// What the embedded database holds in memory: PostgreSQL's settings (storage/pglite-engine.ts),
// in memory as on disk, and the worker's young generation (storage/db.ts).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { openPglite } from '../../storage/pglite-engine.js';
import { startScript } from '../helpers/start-script.js';

const MB = 1024 * 1024;

test('a database in memory runs with the settings and value parsers of one on disk, and its shared memory fits one session', async (t) => {
  const dir = await promisify(mkdtemp)(path.join(os.tmpdir(), 'signet-pglite-'));
  const memory = await openPglite(undefined);
  const disk = await openPglite(path.join(dir, 'db'));
  try {
    const look = async (db: typeof memory) => ({
      settings: (
        await db.query<{ name: string; setting: string }>(
          "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'max_connections', 'max_wal_senders', 'fsync') ORDER BY name",
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
      { name: 'max_wal_senders', setting: '0' },
      { name: 'shared_buffers', setting: '1024' },
    ]);
    // Shared memory sized for the one session PGlite runs, not for replication or autovacuum
    // processes it never starts (14 MiB before).
    const [shm] = (await disk.query<{ bytes: number }>('SELECT sum(allocated_size)::int8 AS bytes FROM pg_shmem_allocations')).rows;
    t.true(shm!.bytes <= 12.5 * 1024 * 1024, `${shm!.bytes} bytes of shared memory`);
    t.is(onDisk.values?.n, 9007199254740991);
    t.true(Buffer.isBuffer(onDisk.values?.b) && onDisk.values.b.equals(Buffer.from([1, 2])));
  } finally {
    await memory.close();
    await disk.close();
    await promisify(rm)(dir, { recursive: true, force: true });
  }
});

test('under the start flags the database worker keeps a 1 MB young generation through start-up and 3,000 statements', async (t) => {
  const { flags } = startScript();
  // The server's heap does get the larger young generation these flags ask for (so this can fail).
  t.true(flags.includes('--max-semi-space-size=4'), flags.join(' '));
  const script = `
    const v8 = await import('node:v8');
    const { createPgliteDb } = await import(${JSON.stringify(new URL('../../storage/db.ts', import.meta.url).href)});
    const db = await createPgliteDb(undefined);
    try {
      await db.query('CREATE TABLE t (id int PRIMARY KEY, name text, body bytea)');
      for (let i = 0; i < 1000; i++) {
        await db.query('INSERT INTO t VALUES ($1, $2, $3)', [i, 'name ' + i, Buffer.alloc(512, i)]);
        await db.query('SELECT * FROM t WHERE id = $1', [i]);
        await db.query('SELECT count(*) FROM t WHERE name LIKE $1', ['%' + i]);
      }
      const worker = await db.heapSpaces();
      const server = v8.getHeapSpaceStatistics().map((s) => ({ name: s.space_name, size: s.space_size }));
      console.log(JSON.stringify({ worker, server }));
    } finally {
      await db.close();
    }
  `;
  const { stdout } = await promisify(execFile)(process.execPath, [...flags, '--import=tsx', '--input-type=module', '-e', script], {
    timeout: 180_000,
  });
  const { worker, server } = JSON.parse(stdout) as {
    worker: { name: string; size: number; used: number }[];
    server: { name: string; size: number }[];
  };
  const newSpace = (spaces: { name: string; size: number }[]): number => spaces.find((s) => s.name === 'new_space')?.size ?? NaN;
  t.log(`new space: database worker ${(newSpace(worker) / MB).toFixed(1)} MB, server ${(newSpace(server) / MB).toFixed(1)} MB`);
  // Two semi-spaces of at most 1 MB each; the worker's old generation really holds PGlite.
  t.true(newSpace(worker) <= 2 * MB, `worker new space ${newSpace(worker)} bytes`);
  t.true(
    worker.filter((s) => s.name === 'old_space').every((s) => s.used > 4 * MB),
    JSON.stringify(worker),
  );
});
