// Test-run settings. CI sets SIGNET_TEST_REQUIRE_ALL=1 (see .ci/run): then a missing external
// component (PostgreSQL server, skopeo, docker, podman, gpg) fails the run instead of skipping.
import { spawnSync } from 'node:child_process';
import anyTest, { type TestFn } from 'ava';

export const REQUIRE_ALL = process.env.SIGNET_TEST_REQUIRE_ALL === '1';

export const POSTGRES_ADMIN_URL = process.env.SIGNET_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * `test` when every named command is installed; otherwise `test.skip` with a message saying what
 * is missing, or, under SIGNET_TEST_REQUIRE_ALL=1, a test that fails saying so.
 */
export function testWithCommands<Context = unknown>(suite: string, commands: string[]): TestFn<Context> {
  const test = anyTest as TestFn<Context>;
  const missing = commands.filter((c) => !hasCommand(c));
  if (missing.length === 0) return test;
  const why = `${suite}: ${missing.join(', ')} not installed`;
  if (REQUIRE_ALL) {
    test(`${suite} requires ${missing.join(', ')}`, (t) => {
      t.fail(`${why} (SIGNET_TEST_REQUIRE_ALL=1 forbids skipping)`);
    });
  } else {
    process.stderr.write(`\nSKIPPING ${why}; set up as .ci/run does to run it\n`);
  }
  return test.skip as unknown as TestFn<Context>;
}
