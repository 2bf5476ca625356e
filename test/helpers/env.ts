// Test-run settings. CI sets SIGNET_TEST_REQUIRE_ALL=1 (see .ci/run): then a missing external
// component (PostgreSQL server, skopeo, docker, podman, gpg) fails the run instead of skipping.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import anyTest, { type TestFn } from 'ava';
import { POSTGRES_ADMIN_URL } from './postgres.js';

export { POSTGRES_ADMIN_URL };

export const REQUIRE_ALL = process.env.SIGNET_TEST_REQUIRE_ALL === '1';

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Whether the PostgreSQL server at POSTGRES_ADMIN_URL accepts a query. Synchronous (a child
 * process), because ava needs every test declared before the file's first await.
 */
export function postgresAnswers(): boolean {
  const script = [
    "import pg from 'pg';",
    'const client = new pg.Client({ connectionString: process.argv[1], connectionTimeoutMillis: 3000 });',
    "try { await client.connect(); await client.query('SELECT 1'); await client.end(); process.exit(0); }",
    'catch { process.exit(1); }',
  ].join('\n');
  const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script, POSTGRES_ADMIN_URL], {
    cwd: repoRoot,
    stdio: 'ignore',
    timeout: 10_000,
  });
  return result.status === 0;
}

/**
 * `test` when every named command is installed (with `postgres`, the PostgreSQL server answers;
 * with `root`, the tests run as root, as dockerd and `podman image mount` need; `check` returns
 * what else is missing, if anything); otherwise a
 * `test` whose tests and hooks are all skipped, with a message saying what is missing, or, under
 * SIGNET_TEST_REQUIRE_ALL=1, a test that fails saying so.
 */
export function testWithCommands<Context = unknown>(
  suite: string,
  commands: string[],
  options: { postgres?: boolean; root?: boolean; check?: () => string | undefined } = {},
): TestFn<Context> {
  const test = anyTest as TestFn<Context>;
  const missing = commands.filter((c) => !hasCommand(c)).map((c) => `${c} not installed`);
  if (options.postgres && !postgresAnswers()) missing.push(`no PostgreSQL server answers at ${POSTGRES_ADMIN_URL}`);
  if (options.root && process.getuid?.() !== 0) missing.push('not running as root');
  const unmet = options.check?.();
  if (unmet) missing.push(unmet);
  if (missing.length === 0) return test;
  const why = `${suite}: ${missing.join(', ')}`;
  if (REQUIRE_ALL) {
    test(`${suite}: prerequisites are present`, (t) => {
      t.fail(`${why} (SIGNET_TEST_REQUIRE_ALL=1 forbids skipping)`);
    });
  } else {
    process.stderr.write(`\nSKIPPING ${why}; set up as .ci/run does to run it\n`);
  }
  return skippingChain(test);
}

function skippedHook(hook: { skip: object }, always?: { skip: object }): object {
  const alwaysSkipped = always ? skippedHook(always) : undefined;
  return new Proxy(hook.skip, {
    get: (target, prop) => (prop === 'always' ? alwaysSkipped : prop === 'skip' ? target : (Reflect.get(target, prop) as unknown)),
  });
}

/**
 * A TestFn that registers every test and hook as skipped, through the whole chain: `test.skip`
 * alone has no `before`, `after.always` or `serial`, and hooks (which start daemons) must not run.
 */
function skippingChain<Context>(test: TestFn<Context>): TestFn<Context> {
  const hooks: Record<string, object> = {
    before: skippedHook(test.before),
    beforeEach: skippedHook(test.beforeEach),
    after: skippedHook(test.after, test.after.always),
    afterEach: skippedHook(test.afterEach, test.afterEach.always),
  };
  const chain: object = new Proxy(test.skip, {
    get(target, prop) {
      if (prop === 'serial' || prop === 'failing' || prop === 'only' || prop === 'skip') return chain;
      if (typeof prop === 'string' && prop in hooks) return hooks[prop];
      if (prop === 'todo' || prop === 'macro' || prop === 'meta') return Reflect.get(test, prop);
      return Reflect.get(target, prop) as unknown;
    },
  });
  return chain as TestFn<Context>;
}
