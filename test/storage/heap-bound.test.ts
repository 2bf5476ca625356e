// storage/heap-bound.ts: garbage that outlived young collections does not pile up to V8's first
// old-generation limit (64 MB with the start flags) before a full collection frees it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import test from 'ava';
import fc from 'fast-check';
import { boundOldGeneration } from '../../storage/heap-bound.js';
import { startScript } from '../helpers/start-script.js';

const MB = 1024 * 1024;

test('a full collection starts once the old generation has grown by the bound, and the next look is the new base', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 200 * MB }), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 64 * MB }),
      (looks, growth) => {
        let used = 10 * MB;
        const collections: number[] = [];
        const bound = boundOldGeneration({ measure: () => used, collect: () => collections.push(used), growthBytes: growth });
        bound.stop();
        // The same rule, written out: base is the first look, or the first look after a collection.
        let base: number | undefined = 10 * MB;
        const expected: number[] = [];
        for (const look of looks) {
          used = look;
          const fired = bound.check();
          let expectFired = false;
          if (base === undefined || look < base) base = look;
          else if (look - base >= growth) {
            expected.push(look);
            expectFired = true;
            base = undefined;
          }
          t.is(fired, expectFired);
        }
        t.deepEqual(collections, expected);
      },
    ),
  );
});

test('growth below the bound never starts a collection, however often it is checked', (t) => {
  let used = 50 * MB;
  let collections = 0;
  const bound = boundOldGeneration({ measure: () => used, collect: () => collections++, growthBytes: 8 * MB });
  bound.stop();
  for (let i = 0; i < 1000; i++) {
    used = 50 * MB + ((i * 7919) % (8 * MB));
    bound.check();
  }
  t.is(collections, 0);
});

test('by default a heap is collected once its old generation has grown 4 MB, not before', (t) => {
  let used = 20 * MB;
  let collections = 0;
  const bound = boundOldGeneration({ measure: () => used, collect: () => collections++ });
  bound.stop();
  used += 4 * MB - 1;
  t.false(bound.check());
  used += 1;
  t.true(bound.check());
  t.is(collections, 1);
});

test('without the gc extension nothing is checked or collected', (t) => {
  const exposed = globalThis.gc;
  globalThis.gc = undefined;
  try {
    let measured = 0;
    const bound = boundOldGeneration({ measure: () => ++measured * 100 * MB });
    t.false(bound.check());
    bound.stop();
  } finally {
    globalThis.gc = exposed;
  }
});

/**
 * A node with the registry's start flags making objects that outlive two young collections (a ring
 * of them, as requests waiting on fsyncs are) and then die, at 10 MB/s for 10 s (batches of about
 * 20 KB, paced by the clock, so a busy machine makes the same garbage at the same rate). The
 * largest old generation seen, in MB.
 */
async function largestOldGeneration(bounded: boolean): Promise<number> {
  const script = `
    const v8 = await import('node:v8');
    const { boundOldGeneration } = await import(${JSON.stringify(new URL('../../storage/heap-bound.ts', import.meta.url).href)});
    if (${bounded}) boundOldGeneration();
    const old = () => v8.getHeapSpaceStatistics().filter((s) => !s.space_name.startsWith('new')).reduce((n, s) => n + s.space_used_size, 0);
    const ring = new Array(512);
    const start = Date.now();
    let largest = 0, made = 0;
    const sampler = setInterval(() => { largest = Math.max(largest, old()); }, 20);
    const maker = setInterval(() => {
      const due = Math.min(5000, Math.floor((Date.now() - start) / 2));
      for (; made < due; made++) {
        const batch = [];
        for (let k = 0; k < 64; k++) batch.push({ k, name: 'entry ' + k + ' ' + made, list: [k, made] });
        ring[made % ring.length] = batch;
      }
      if (made < 5000) return;
      clearInterval(maker);
      clearInterval(sampler);
      console.log(Math.max(largest, old()) / ${MB});
    }, 1);
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...startScript().flags, '--import=tsx', '--input-type=module', '-e', script],
    { timeout: 120_000 },
  );
  return Number(stdout.trim());
}

test('promoted garbage is collected long before the first old-generation limit of the start flags', async (t) => {
  const [unbounded, bounded] = await Promise.all([largestOldGeneration(false), largestOldGeneration(true)]);
  t.log(`largest old generation: ${unbounded.toFixed(1)} MB without the bound, ${bounded.toFixed(1)} MB with it`);
  // The load does pile up garbage where nothing bounds it (so this test can fail)...
  t.true(unbounded > 45, `without the bound: ${unbounded.toFixed(1)} MB`);
  // ...and with the bound stays within what lives (~10 MB of the ring, a few of the rest) + 4 MB +
  // about a second of promotion.
  t.true(bounded < 40, `with the bound: ${bounded.toFixed(1)} MB`);
});
