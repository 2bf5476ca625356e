// The embedded database's statements run as named prepared statements (storage/pglite-statements.ts):
// what a caller sees must be what PGlite's own query() gives, values and errors alike, however
// many texts come and go, and across a change of a table a prepared statement reads.
import test from 'ava';
import type { PGlite } from '@electric-sql/pglite';
import { openPglite } from '../../storage/pglite-engine.js';
import { createPreparedStatements } from '../../storage/pglite-statements.js';

let db: PGlite | undefined;
test.before(async () => {
  db = await openPglite(undefined);
});
test.after.always(async () => {
  await db?.close();
});
function open(): PGlite {
  if (!db) throw new Error('PGlite not open');
  return db;
}

test.serial('values come back as query() gives them: bytes of every value, arrays, JSON, booleans, NULL, int8', async (t) => {
  const statements = createPreparedStatements(open());
  const bytes = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) % 256));
  const sql = `SELECT $1::bytea AS b, $2::text[] AS a, $3::jsonb AS j, $4::boolean AS f, $5::text AS n, $6::bigint AS i, $7::bigint[] AS s`;
  const params = [bytes, ['x', 'y,"z"', 'é'], { k: ['v', 1] }, false, null, 123456789012, [1, 2]];
  const expected = (await open().query<Record<string, unknown>>(sql, params)).rows;
  for (let i = 0; i < 3; i++) t.deepEqual(await statements.query(sql, params), expected, `call ${i + 1}`);
  t.true(Buffer.from((expected[0] as { b: Uint8Array }).b).equals(bytes));
});

test.serial('bytea comes back byte for byte: every value, and empty', async (t) => {
  const statements = createPreparedStatements(open());
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => 255 - i));
  const [row] = (await statements.query(`SELECT $1::bytea AS b, ''::bytea AS e`, [bytes])) as { b: Uint8Array; e: Uint8Array }[];
  t.true(Buffer.from(row!.b).equals(bytes));
  t.is(row!.e.length, 0);
});

test.serial('a failed statement throws what PostgreSQL said, and the session goes on', async (t) => {
  const statements = createPreparedStatements(open());
  await statements.query('CREATE TABLE uniq (k text PRIMARY KEY)');
  await statements.query('INSERT INTO uniq VALUES ($1)', ['a']);
  const duplicate = await t.throwsAsync(statements.query('INSERT INTO uniq VALUES ($1)', ['a']));
  t.is((duplicate as Error & { code?: string }).code, '23505');
  const syntax = await t.throwsAsync(statements.query('SELEC 1'));
  t.is((syntax as Error & { code?: string }).code, '42601');
  await statements.query('INSERT INTO uniq VALUES ($1)', ['b']);
  t.deepEqual(await statements.query('SELECT k FROM uniq ORDER BY k'), [{ k: 'a' }, { k: 'b' }]);
  // In a transaction a failure aborts it as usual; ROLLBACK ends it and the statements stay usable.
  await statements.query('BEGIN');
  await t.throwsAsync(statements.query('INSERT INTO uniq VALUES ($1)', ['a']));
  await t.throwsAsync(statements.query('SELECT k FROM uniq ORDER BY k'), { message: /current transaction is aborted/ });
  await statements.query('ROLLBACK');
  t.deepEqual(await statements.query('SELECT k FROM uniq ORDER BY k'), [{ k: 'a' }, { k: 'b' }]);
});

test.serial('no more statements stay prepared than the bound, and evicted ones are prepared again', async (t) => {
  const preparedCount = async () =>
    ((await open().query<{ count: number }>(`SELECT count(*)::int AS count FROM pg_prepared_statements`)).rows[0] as { count: number })
      .count;
  const before = await preparedCount();
  const statements = createPreparedStatements(open(), 3);
  const texts = Array.from({ length: 8 }, (_, i) => `SELECT $1::int + ${i} AS v`);
  for (let round = 0; round < 3; round++) {
    for (const [i, sql] of texts.entries()) t.deepEqual(await statements.query(sql, [round]), [{ v: round + i }]);
  }
  t.is(await preparedCount(), before + 3);
});

test.serial('a statement prepared before its table changed returns the table as it is now', async (t) => {
  const statements = createPreparedStatements(open());
  await statements.query('CREATE TABLE altered (a int)');
  await statements.query('INSERT INTO altered VALUES (1)');
  t.deepEqual(await statements.query('SELECT * FROM altered'), [{ a: 1 }]);
  await statements.query('ALTER TABLE altered ADD COLUMN b text DEFAULT $$x$$');
  t.deepEqual(await statements.query('SELECT * FROM altered'), [{ a: 1, b: 'x' }]);
});
