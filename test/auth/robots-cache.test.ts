// The robot lookup cache must not tell an attacker which robot names are in use: a refused secret
// costs a read of the store whether or not the robot was looked up a moment ago (by the pipeline
// that owns it), as for a name that has no robot. Counted at the store, on the embedded database.
import test from 'ava';
import { createRobots } from '../../auth/robots.js';
import { createPgliteDb } from '../../storage/db.js';
import { migrate } from '../../storage/migrate.js';
import { createPostgresRobotStore, type RobotStore } from '../../storage/robot-store.js';

test('a wrong secret reads the store even when the robot is cached; only a passing check is answered from the cache', async (t) => {
  const db = await createPgliteDb(undefined);
  t.teardown(() => db.close());
  await migrate(db);
  await db.query(`INSERT INTO projects (name, public, created_by) VALUES ('team', false, 'root')`);
  const real = createPostgresRobotStore(db);
  let reads = 0;
  const store: RobotStore = { ...real, find: (project, name) => ((reads += 1), real.find(project, name)) };
  const robots = createRobots({ store, cacheTtlMs: 60_000 });
  const created = await robots.create('team', 'ci', 'developer', undefined, 'root');
  t.truthy(created);
  const account = 'robot$team+ci';

  const readsFor = async (name: string, secret: string): Promise<[number, boolean]> => {
    const before = reads;
    const principal = await robots.verify(name, secret);
    return [reads - before, principal !== undefined];
  };
  t.deepEqual(await readsFor(account, created!.secret), [1, true], 'the first use reads the store');
  t.deepEqual(await readsFor(account, created!.secret), [0, true], 'the pipeline’s next use is answered from the cache');
  // The attacker's guesses: the same cost for a robot in use, a name probed before, and a new name.
  t.deepEqual(await readsFor(account, 'guess'), [1, false]);
  t.deepEqual(await readsFor('robot$team+nobody', 'guess'), [1, false]);
  t.deepEqual(await readsFor('robot$team+nobody', 'guess'), [1, false]);
  t.deepEqual(await readsFor(account, created!.secret), [0, true], 'a refused guess leaves the owner’s entry usable');
});
