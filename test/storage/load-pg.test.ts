// The PostgreSQL driver loads without Node.js's fetch implementation: pg asks at load whether it
// runs in a Cloudflare Worker, and on Node.js 20 answering cost 40-50 ms of a PostgreSQL
// registry's start-up (storage/db.ts, requirePg). Checked in a process of its own, where nothing
// else has loaded either.
import test from 'ava';
import { run } from '../helpers/run.js';

const PROBE = `
const before = typeof globalThis.navigator;
const { loadPg } = await import('./storage/db.ts');
const pg = await loadPg();
const client = new pg.Client({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
console.log(JSON.stringify({
  fetchLoaded: process.moduleLoadList.some((m) => m.includes('deps/undici')),
  before,
  after: typeof globalThis.navigator,
  client: typeof client.connect,
  int8: pg.types.getTypeParser(pg.types.builtins.INT8)('42'),
}));
`;

test('loading pg neither loads fetch nor leaves a navigator behind, and its parsers are set', async (t) => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROBE]);
  const seen = JSON.parse(stdout) as { fetchLoaded: boolean; before: string; after: string; client: string; int8: unknown };
  t.false(seen.fetchLoaded, 'Node.js fetch was not loaded');
  t.is(seen.after, seen.before, 'globalThis.navigator is as it was');
  t.is(seen.client, 'function');
  t.is(seen.int8, 42, 'int8 read as a number');
});
