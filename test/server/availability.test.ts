// The outage log: one line when an outage starts, one when it ends, however the outcomes of
// operations in flight at either edge arrive.
import test from 'ava';
import { createAvailability } from '../../server/availability.js';
import { createMetrics } from '../../server/metrics.js';
import { DependencyUnavailableError } from '../../storage/errors.js';
import { captureLog } from '../helpers/log-capture.js';
import { sleep } from '../helpers/wait.js';

const refused = new DependencyUnavailableError('database', 'connection refused', {
  cause: Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' }),
});

test('an outage is two lines however many operations fail, and straddling outcomes change nothing', async (t) => {
  const logs = captureLog();
  const metrics = createMetrics({ defaultMetrics: false });
  const availability = createAvailability({
    log: logs.log,
    storage: { driver: 'filesystem' },
    gauge: metrics.dependencyUp,
    settleMs: 20,
  });
  const sentBefore = Date.now();
  await sleep(5);
  availability.report('database', refused, Date.now());
  for (let i = 0; i < 50; i++) availability.report('database', refused, Date.now());
  t.is(availability.outage('database')?.reason, 'connection refused');
  // An answer to a statement sent before the outage began, arriving now, does not end it.
  availability.report('database', undefined, sentBefore);
  t.truthy(availability.outage('database'));
  t.regex(await metrics.register.getSingleMetricAsString('signet_dependency_up'), /dependency="database"} 0/);

  await sleep(5);
  const sentDuring = Date.now();
  await sleep(5);
  availability.report('database', undefined, Date.now());
  t.is(availability.outage('database'), undefined);
  // A failure of a statement sent during the outage (a connect that timed out) starts no new one.
  availability.report('database', refused, sentDuring);
  t.is(availability.outage('database'), undefined);
  await sleep(40);

  const down = logs.withMessage('database unavailable: requests that need it answer 503 until it is back');
  t.is(down.length, 1);
  t.like(down[0], { level: 50, dependency: 'database', reason: 'connection refused', cause: 'connect ECONNREFUSED 10.0.0.5:5432' });
  t.is(down[0]?.err, undefined, 'no stack trace');
  const back = logs.withMessage('database available again');
  t.is(back.length, 1);
  t.is(typeof back[0]?.unavailableSeconds, 'number');
  t.regex(await metrics.register.getSingleMetricAsString('signet_dependency_up'), /dependency="database"} 1/);
});

test('a failure right after the first success is the same outage: PostgreSQL shutting down one connection at a time', async (t) => {
  const logs = captureLog();
  const metrics = createMetrics({ defaultMetrics: false });
  const availability = createAvailability({ log: logs.log, storage: {}, gauge: metrics.dependencyUp, settleMs: 200 });
  const lost = new DependencyUnavailableError('database', 'connection lost');
  const shuttingDown = new DependencyUnavailableError('database', 'shutting down');
  availability.report('database', lost, Date.now());
  await sleep(5);
  // A connection whose backend is not terminated yet answers; requests go on at once...
  availability.report('database', undefined, Date.now());
  t.is(availability.outage('database'), undefined);
  t.regex(await metrics.register.getSingleMetricAsString('signet_dependency_up'), /dependency="database"} 1/);
  await sleep(5);
  // ...and its backend is terminated a moment later: still the first outage, with its reason.
  availability.report('database', shuttingDown, Date.now());
  t.is(availability.outage('database')?.reason, 'connection lost');
  t.regex(await metrics.register.getSingleMetricAsString('signet_dependency_up'), /dependency="database"} 0/);
  await sleep(250);
  t.is(logs.withMessage('database available again').length, 0, 'no recovery logged while it is down');
  await sleep(5);
  availability.report('database', undefined, Date.now());
  t.is(logs.withMessage('database available again').length, 0, 'logged once it has answered for the settle time');
  await sleep(250);
  t.is(logs.withMessage('database unavailable: requests that need it answer 503 until it is back').length, 1);
  const back = logs.withMessage('database available again');
  t.is(back.length, 1);
  t.true((back[0]?.unavailableSeconds as number) >= 0.2, 'the outage lasted until the last recovery');
});

test('change notifications: lost and back are one warning and one line, and do not touch the database state', async (t) => {
  const logs = captureLog();
  const availability = createAvailability({ log: logs.log, storage: {}, settleMs: 10 });
  availability.notifications(false, new Error('Connection terminated unexpectedly'));
  availability.notifications(false, new Error('connect ECONNREFUSED'));
  t.is(availability.outage('notifications')?.reason, 'connection lost');
  t.is(availability.outage('database'), undefined);
  availability.notifications(true);
  await sleep(30);
  t.is(logs.withMessage('change notifications from other replicas interrupted; caches are flushed on reconnect').length, 1);
  t.is(logs.withMessage('change notifications available again').length, 1);
});
