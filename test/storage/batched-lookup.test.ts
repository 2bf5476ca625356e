// Lookups batched while the database is busy (storage/batched-lookup.ts): each caller gets the
// answer to its own key, batches never outnumber the slots, and a failure stays in its batch.
import test from 'ava';
import fc from 'fast-check';
import { createBatchedLookup } from '../../storage/batched-lookup.js';

/** A `run` whose batches end when the test says; it records every batch it was given. */
function controlledRun() {
  const batches: number[][] = [];
  const pending: { keys: readonly number[]; finish: (fail?: Error) => void }[] = [];
  let running = 0;
  let mostRunning = 0;
  const run = (keys: readonly number[]): Promise<string[]> =>
    new Promise((resolve, reject) => {
      batches.push([...keys]);
      running++;
      mostRunning = Math.max(mostRunning, running);
      pending.push({
        keys,
        finish: (fail) => {
          running--;
          if (fail) reject(fail);
          else resolve(keys.map((k) => `answer ${k}`));
        },
      });
    });
  return { run, batches, pending, mostRunning: () => mostRunning };
}

const ticks = () => new Promise<void>((resolve) => setImmediate(resolve));

test('a lookup with a slot free goes at once; those made while the slot is taken go together next', async (t) => {
  const c = controlledRun();
  const lookup = createBatchedLookup(c.run, { slots: () => 1 });
  const first = lookup(1);
  await ticks();
  t.deepEqual(c.batches, [[1]]);
  const rest = [lookup(2), lookup(3), lookup(2)];
  await ticks();
  t.deepEqual(c.batches, [[1]], 'they wait for the slot');
  c.pending.shift()!.finish();
  t.is(await first, 'answer 1');
  await ticks();
  t.deepEqual(c.batches, [[1], [2, 3, 2]]);
  c.pending.shift()!.finish();
  t.deepEqual(await Promise.all(rest), ['answer 2', 'answer 3', 'answer 2']);
});

test('a failed batch fails its own lookups only, and gives its slot on', async (t) => {
  const c = controlledRun();
  const lookup = createBatchedLookup(c.run, { slots: () => 1 });
  const failing = lookup(1);
  await ticks();
  const next = lookup(2);
  c.pending.shift()!.finish(new Error('database gone'));
  await t.throwsAsync(failing, { message: 'database gone' });
  await ticks();
  c.pending.shift()!.finish();
  t.is(await next, 'answer 2');
});

test('property: every lookup gets its own answer, and batches never outnumber the slots', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 1, max: 8 }),
      fc.array(
        fc.oneof(
          fc.integer({ min: 0, max: 20 }),
          fc.constant('finish' as const),
          fc.constant('fail' as const),
          fc.constant('tick' as const),
        ),
        {
          maxLength: 60,
        },
      ),
      async (slots, maxBatch, steps) => {
        const c = controlledRun();
        const lookup = createBatchedLookup(c.run, { slots: () => slots, maxBatch });
        const outcomes: Promise<void>[] = [];
        const check = (key: number) => (answer: string) => {
          if (answer !== `answer ${key}`) throw new Error(`lookup ${key} was answered ${answer}`);
        };
        for (const step of steps) {
          if (typeof step === 'number') outcomes.push(lookup(step).then(check(step), () => undefined));
          else if (step === 'tick') await ticks();
          else {
            c.pending.shift()?.finish(step === 'fail' ? new Error('failed') : undefined);
          }
        }
        // Then every batch ends, however many wait.
        for (let rounds = 0; rounds < 100 && (c.pending.length > 0 || rounds < 2); rounds++) {
          c.pending.shift()?.finish();
          await ticks();
        }
        await Promise.all(outcomes);
        if (c.pending.length > 0) throw new Error('batches left waiting');
        if (c.mostRunning() > slots) throw new Error(`${c.mostRunning()} batches ran at once with ${slots} slots`);
        if (c.batches.some((b) => b.length > maxBatch)) throw new Error('a batch above maxBatch');
        if (c.batches.flat().length !== steps.filter((s) => typeof s === 'number').length) throw new Error('a lookup ran twice or never');
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});
