// Tag lists come from the database as one string in the order of the query's sorted subquery,
// which string_agg keeps without an ORDER BY of its own (storage/postgres-metadata-store.ts);
// inOrder is the check that pages cut from a cached list (by binary search) can rely on it.
import test from 'ava';
import fc from 'fast-check';
import { inOrder } from '../../storage/metadata-store.js';

const tagName = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/);
const byBytes = (names: string[]): string[] => [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

test('a tag list in byte order is kept as it came; one out of order is put in byte order', (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(tagName, { maxLength: 60 }), fc.integer(), (names, seed) => {
      const sorted = byBytes(names);
      const kept = [...sorted];
      t.is(inOrder(kept), kept);
      const shuffled = [...sorted].sort((a, b) => ((a.length * 31 + seed) % 7) - ((b.length * 31 + seed) % 7));
      t.deepEqual(inOrder(shuffled), sorted);
    }),
    { numRuns: 300 },
  );
});
