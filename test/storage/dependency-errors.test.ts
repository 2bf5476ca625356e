// How the storage layer reads a database or object store that does not answer: as
// DependencyUnavailableError with a fixed phrase (a 503 to clients), reported to the availability
// listener; statements are bounded by the query timeout, except on the maintenance handle.
import net from 'node:net';
import type { ExecutionContext } from 'ava';
import { createPostgresDb } from '../../storage/db.js';
import { DependencyUnavailableError, StorageFullError, type Dependency } from '../../storage/errors.js';
import { classifyPgError } from '../../storage/pg-errors.js';
import { createS3BlobStore } from '../../storage/s3-blob-store.js';
import { testWithCommands } from '../helpers/env.js';
import { createTestDatabase } from '../helpers/postgres.js';

const test = testWithCommands('dependency errors', [], { postgres: true });

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function listener(): {
  reports: Array<[Dependency, string | undefined]>;
  report: (d: Dependency, f: DependencyUnavailableError | undefined) => void;
} {
  const reports: Array<[Dependency, string | undefined]> = [];
  return { reports, report: (dependency, failure) => void reports.push([dependency, failure?.reason]) };
}

async function unavailable(t: ExecutionContext, promise: Promise<unknown>, reason: string, dependency: Dependency): Promise<void> {
  const err = await t.throwsAsync(promise, { instanceOf: DependencyUnavailableError });
  t.is(err?.reason, reason);
  t.is(err?.dependency, dependency);
}

test('a PostgreSQL that refuses connections is unavailable, and said so to the listener', async (t) => {
  const { reports, report } = listener();
  const db = await createPostgresDb(`postgres://postgres@127.0.0.1:${await closedPort()}/postgres`, { onAvailability: report });
  t.teardown(() => db.close());
  await unavailable(t, db.query('SELECT 1'), 'connection refused', 'database');
  await unavailable(
    t,
    db.transaction(async (tx) => tx.query('SELECT 1')),
    'connection refused',
    'database',
  );
  t.deepEqual(reports, [
    ['database', 'connection refused'],
    ['database', 'connection refused'],
  ]);
});

test('a statement past the query timeout is unavailable ("timed out"), and the connection is not reused; maintenance statements are not bounded', async (t) => {
  const database = await createTestDatabase();
  const { reports, report } = listener();
  const db = await createPostgresDb(database.url, { max: 1, queryTimeoutMs: 300, onAvailability: report });
  t.teardown(async () => {
    await db.close();
    await database.drop();
  });
  await unavailable(t, db.query('SELECT pg_sleep(2)'), 'timed out', 'database');
  await unavailable(
    t,
    db.transaction((tx) => tx.query('SELECT pg_sleep(2)')),
    'timed out',
    'database',
  );
  // The pool's one connection was dropped and replaced: the next statement gets its own answer.
  t.deepEqual(await db.query<{ n: number }>('SELECT 1 AS n'), [{ n: 1 }]);
  t.deepEqual(reports.at(-1), ['database', undefined], 'an answer after the failure is reported too');
  t.deepEqual(await db.maintenance!.query('SELECT pg_sleep(0.5)::text AS slept'), [{ slept: '' }]);
  // A failure of the statement itself is not the database's absence.
  const bad = await t.throwsAsync(db.query('SELECT * FROM no_such_table'));
  t.false(bad instanceof DependencyUnavailableError);
});

test('PostgreSQL error codes: connection and server states are unavailability, disk_full is storage full, the rest stays', (t) => {
  const pgError = (code: string): Error => Object.assign(new Error(`error ${code}`), { code });
  const reasonOf = (err: unknown): string | undefined => (err instanceof DependencyUnavailableError ? err.reason : undefined);
  t.is(reasonOf(classifyPgError(pgError('57P01'))), 'shutting down');
  t.is(reasonOf(classifyPgError(pgError('57P03'))), 'not accepting connections yet');
  t.is(reasonOf(classifyPgError(pgError('08006'))), 'connection lost');
  t.is(reasonOf(classifyPgError(pgError('28P01'))), 'authentication failed');
  t.is(reasonOf(classifyPgError(pgError('ETIMEDOUT'))), 'timed out');
  t.is(reasonOf(classifyPgError(new Error('Connection terminated unexpectedly'))), 'connection lost');
  t.is(reasonOf(classifyPgError(new Error('timeout exceeded when trying to connect'))), 'timed out');
  t.true(classifyPgError(pgError('53100')) instanceof StorageFullError);
  const constraint = pgError('23505');
  t.is(classifyPgError(constraint), constraint);
  const plain = new Error('something else');
  t.is(classifyPgError(plain), plain);
});

test('an S3 endpoint that refuses connections is unavailable for every operation, and said so', async (t) => {
  const { reports, report } = listener();
  const store = createS3BlobStore({
    bucket: 'blobs',
    regionEndpoint: `http://127.0.0.1:${await closedPort()}`,
    accessKey: 'key',
    secretKey: 'secret',
    onAvailability: report,
  });
  await unavailable(t, store.stat('blobs/x'), 'connection refused', 'storage');
  await unavailable(t, store.delete('blobs/x'), 'connection refused', 'storage');
  await unavailable(
    t,
    (async () => {
      for await (const key of store.list('blobs/')) t.fail(key);
    })(),
    'connection refused',
    'storage',
  );
  t.true(reports.length >= 3);
  t.true(reports.every(([dependency, reason]) => dependency === 'storage' && reason === 'connection refused'));
});

test('an S3 endpoint that accepts and never answers is unavailable ("timed out") after the idle timeout', async (t) => {
  const held: net.Socket[] = [];
  const silent = net.createServer((socket) => void held.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    silent.close();
  });
  const store = createS3BlobStore({
    bucket: 'blobs',
    regionEndpoint: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
    idleTimeoutMs: 300,
  });
  const started = Date.now();
  await unavailable(t, store.stat('blobs/x'), 'timed out', 'storage');
  t.true(Date.now() - started < 10_000);
});
