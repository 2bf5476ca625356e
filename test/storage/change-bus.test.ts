// The change bus on a real PostgreSQL server: what replicas' caches may rely on. Notices of
// repository changes come from the database in the writing transaction (whoever writes, and
// whatever happens to the writer after its commit), and the bus's confirmation (`confirmedAt`)
// means that every change committed before it has been heard. Skipped with a message when no
// server answers (failing under SIGNET_TEST_REQUIRE_ALL=1).
import pg from 'pg';
import fc from 'fast-check';
import { createChangeBus, type Change, type ChangeBus } from '../../storage/change-bus.js';
import { createPostgresDb, type Db } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { randomDigest, randomManifest, randomRepository } from '../conformance/metadata-store.js';
import { testWithCommands } from '../helpers/env.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { sleep, until } from '../helpers/wait.js';

const test = testWithCommands('change bus on PostgreSQL', [], { postgres: true });

let database: TestDatabase;
let db: Db;
// No query is queued behind an unanswered ping, in any test of this file: pg warns of that once per
// process (and pg 9 refuses it); the heartbeat of 20 ms met it under the concurrent writers.
const queued: string[] = [];
process.on('warning', (warning) => void (warning.message.includes('already executing a query') && queued.push(warning.message)));

test.before(async () => {
  database = await createTestDatabase();
  db = await createPostgresDb(database.url);
  await migrate(db);
});
test.after.always(async () => {
  await db?.close();
  await database?.drop();
});

/** A bus listening on the test database (through `port` if given), and what it hears in order. */
async function listening(port?: number, heartbeatMs = 20): Promise<{ bus: ChangeBus; heard: (Change | 'all')[] }> {
  const url = new URL(database.url);
  if (port !== undefined) url.port = String(port);
  const bus = createChangeBus({ db, connection: { connectionString: url.toString(), query_timeout: 2000 }, heartbeatMs });
  const heard: (Change | 'all')[] = [];
  bus.subscribe((change) => heard.push(change));
  // Listening once its first ping came back.
  if (!(await until(() => bus.confirmedAt() !== undefined, 5000))) throw new Error('the bus never confirmed');
  return { bus, heard };
}

/** A client of its own, as another replica's (or a person's psql) connection. */
async function client(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: database.url });
  await c.connect();
  return c;
}

const names = (heard: (Change | 'all')[]): (string | undefined)[] => heard.map((c) => (c === 'all' ? 'all' : c.repository));

test.serial('a write to tags, manifests or blob links by any connection is heard when it commits, not before', async (t) => {
  const { bus, heard } = await listening();
  t.teardown(() => bus.close());
  const store = createPostgresMetadataStore(db);
  const repository = randomRepository();
  await store.manifests.save(repository, randomManifest(), [], 'latest');
  const other = await client();
  t.teardown(() => other.end());
  /**
   * What was heard since the last call, of everything committed so far: a new repository, the
   * marker, is committed now, and notices arrive in commit order, so once it is heard all earlier
   * ones were.
   */
  const heardSoFar = async (): Promise<(string | undefined)[]> => {
    const marker = randomRepository();
    await store.manifests.save(marker, randomManifest(), [], 'latest');
    if (!(await until(() => names(heard).includes(marker), 5000))) throw new Error('the marker was never heard');
    const at = names(heard).indexOf(marker);
    return names(heard.splice(0, at + 1)).slice(0, at);
  };
  await heardSoFar();

  // A tag moved straight in the database: no registry process said anything.
  await other.query('BEGIN');
  await other.query(
    `UPDATE tags SET updated_at = now() WHERE name = 'latest'
    AND repository_id = (SELECT id FROM repositories WHERE name = $1)`,
    [repository],
  );
  t.deepEqual(await heardSoFar(), [], 'nothing before the commit');
  await other.query('COMMIT');
  t.deepEqual(await heardSoFar(), [repository]);

  // Rolled back: nothing.
  await other.query('BEGIN');
  await other.query(`DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)`, [repository]);
  await other.query('ROLLBACK');
  t.deepEqual(await heardSoFar(), []);

  // Blob links, manifests, and a whole repository removed (its rows go by cascade).
  for (const statement of [
    `DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)`,
    `DELETE FROM manifests WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)`,
    `DELETE FROM repositories WHERE name = $1`,
  ]) {
    await store.manifests.save(repository, randomManifest(), [], 'latest');
    await store.blobs.save(repository, randomDigest(), 10);
    await heardSoFar();
    await other.query(statement, [repository]);
    t.true((await heardSoFar()).includes(repository), statement);
  }
});

test.serial('every change committed before a confirmation was heard before it, under concurrent writers', async (t) => {
  // Pings as often as the writes, so that some are on their way while a change commits.
  const { bus } = await listening(undefined, 1);
  t.teardown(() => bus.close());
  const writers = [await client(), await client()];
  t.teardown(() => Promise.all(writers.map((w) => w.end())));
  const store = createPostgresMetadataStore(db);
  const repositories = Array.from({ length: 8 }, () => randomRepository());
  for (const repository of repositories) await store.manifests.save(repository, randomManifest(), [], 'latest');
  const byName = new Map<string, number>();
  for (const row of await db.query<{ id: number; name: string }>('SELECT id, name FROM repositories')) {
    byName.set(row.name, Number(row.id));
  }

  // What the listener heard, in order, with each confirmation as it advanced.
  const events: ({ confirmed: number } | { repository: string })[] = [];
  bus.subscribe((change) => {
    if (change !== 'all' && change.repository !== undefined) events.push({ repository: change.repository });
  });
  let last = bus.confirmedAt()!;
  const watch = setInterval(() => {
    const now = bus.confirmedAt()!;
    if (now !== last) events.push({ confirmed: (last = now) });
  }, 1);
  t.teardown(() => clearInterval(watch));

  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 7 }), fc.nat({ max: 3 })), {
        minLength: 1,
        maxLength: 40,
      }),
      async (writes) => {
        events.length = 0;
        // Each commit's end as its writer saw it: the change was committed by then.
        const committed: { repository: string; at: number }[] = [];
        await Promise.all(
          [0, 1].map(async (w) => {
            for (const [writer, r, pause] of writes) {
              if (writer !== w) continue;
              await sleep(pause);
              const repository = repositories[r]!;
              await writers[w]!.query('UPDATE tags SET updated_at = now() WHERE repository_id = $1', [byName.get(repository)]);
              committed.push({ repository, at: performance.now() });
            }
          }),
        );
        // Until a confirmation newer than every commit.
        const end = performance.now();
        const confirmedAfter = (): boolean => events.some((e) => 'confirmed' in e && e.confirmed > end);
        await until(confirmedAfter, 2000);
        for (const [i, event] of events.entries()) {
          if (!('confirmed' in event)) continue;
          const before = events.slice(0, i).flatMap((e) => ('repository' in e ? [e.repository] : []));
          for (const change of committed) {
            if (change.at < event.confirmed && !before.includes(change.repository)) {
              throw new Error(`a change to ${change.repository} committed before a confirmation was not heard before it`);
            }
          }
        }
        if (!confirmedAfter()) throw new Error('no confirmation after the writes');
      },
    ),
    { numRuns: 30 },
  );
  t.pass();
});

test.serial('confirmations stop when the listening connection goes silent, and come back after it is replaced', async (t) => {
  const proxy = await startTcpProxy(Number(new URL(database.url).port || 5432));
  t.teardown(() => proxy.close());
  const { bus, heard } = await listening(proxy.port);
  t.teardown(() => bus.close());
  const store = createPostgresMetadataStore(db);
  const repository = randomRepository();

  proxy.stall();
  const stalledAt = performance.now();
  await sleep(300);
  // Changes made meanwhile reach nobody, and the bus does not claim to have heard them.
  await store.manifests.save(repository, randomManifest(), [], 'latest');
  await sleep(300);
  t.true(bus.confirmedAt()! <= stalledAt, 'no confirmation while nothing comes back');
  t.false(names(heard).includes(repository));

  // The stalled ping times out; the bus connects again and drops everything it may have missed.
  proxy.resume();
  t.true(await until(() => bus.confirmedAt()! > stalledAt, 15_000), 'confirmed again');
  t.true(heard.includes('all'));
  t.deepEqual(queued, [], 'in this test or the ones before it (they run in order)');
});
