// The embedded database's per-digest lock: what garbage collection and blob pushes rely on to never
// run at once for one digest, while different digests never wait for each other.
import test from 'ava';
import fc from 'fast-check';
import { createKeyLock } from '../../storage/key-lock.js';

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('property: holders of one key run one at a time in arrival order, a failure releases, other keys overlap', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ key: fc.constantFrom('a', 'b', 'c'), ms: fc.integer({ min: 0, max: 3 }), fails: fc.boolean() }), {
        minLength: 1,
        maxLength: 25,
      }),
      async (jobs) => {
        const lock = createKeyLock();
        const inside = new Map<string, number>();
        const order = new Map<string, number[]>();
        let overlapOfKeys = 0;
        let running = 0;
        const settled = await Promise.allSettled(
          jobs.map((job, i) =>
            lock(job.key, async () => {
              if ((inside.get(job.key) ?? 0) !== 0) throw new Error(`two holders of ${job.key}`);
              inside.set(job.key, 1);
              running += 1;
              overlapOfKeys = Math.max(overlapOfKeys, running);
              order.set(job.key, [...(order.get(job.key) ?? []), i]);
              await tick(job.ms);
              inside.set(job.key, 0);
              running -= 1;
              if (job.fails) throw new Error('job failed');
              return i;
            }),
          ),
        );
        settled.forEach((s, i) => {
          if (s.status === 'rejected') assertEq((s.reason as Error).message, 'job failed');
          else assertEq(s.value, i);
        });
        for (const [key, seen] of order) {
          const arrived = jobs.flatMap((j, i) => (j.key === key ? [i] : []));
          assertEq(seen.join(), arrived.join());
        }
        const keys = new Set(jobs.map((j) => j.key)).size;
        if (keys > 1 && jobs.length === keys && overlapOfKeys !== keys) throw new Error('distinct keys waited for each other');
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

function assertEq(actual: unknown, expected: unknown): void {
  if (actual !== expected) throw new Error(`${String(actual)} !== ${String(expected)}`);
}
