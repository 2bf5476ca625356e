// Password guessing against htpasswd users is bounded per client address and user name
// (auth/guess-limiter.ts): after GUESS_LIMIT refused passwords, Basic credentials and console
// sign-ins for that pair get 429 with Retry-After, the right password included, until the window
// ends. Adversarial testing signed in after 100 wrong passwords in one second.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createGuessLimiter, GUESS_LIMIT, GUESS_WINDOW_MS } from '../../auth/guess-limiter.js';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { startTestRegistry } from '../helpers/registry.js';

test('the limiter: per address and user, within a window', (t) => {
  const limiter = createGuessLimiter(3, 60_000);
  const now = 1_000_000;
  t.false(limiter.failed('10.0.0.1', 'root', now));
  t.false(limiter.failed('10.0.0.1', 'root', now));
  t.is(limiter.wait('10.0.0.1', 'root', now), 0, 'two refusals: still judged');
  t.true(limiter.failed('10.0.0.1', 'root', now + 1000), 'the third reaches the limit');
  t.is(limiter.wait('10.0.0.1', 'root', now + 1000), 59);
  t.is(limiter.wait('10.0.0.2', 'root', now + 1000), 0, 'another address');
  t.is(limiter.wait('10.0.0.1', 'dev', now + 1000), 0, 'another user');
  t.is(limiter.wait('10.0.0.1', 'root', now + 60_000), 0, 'the window is over');
  t.false(limiter.failed('10.0.0.1', 'root', now + 60_000), 'and counting starts again');
});

test('Basic credentials and console sign-ins: 429 with Retry-After past the limit, right password included; others unaffected', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-guess-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw', dev: 'dev-pw' });
  const registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  t.teardown(() => registry.close());
  const v2 = (user: string, password: string) => fetch(`${registry.url}/v2/`, { headers: { Authorization: basic(user, password) } });
  const signIn = (user: string, password: string) =>
    fetch(`${registry.url}/api/v1/session`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Signet-Console': '1' },
      body: JSON.stringify({ user, password }),
    });

  t.is((await v2('root', 'root-pw')).status, 200);
  // Basic credentials and sign-ins count together for the pair.
  for (let i = 0; i < GUESS_LIMIT; i++) t.is((await (i % 2 ? signIn : v2)('root', `guess-${i}`)).status, 401, `guess ${i + 1}`);
  for (const [what, res] of [
    ['a wrong password', await v2('root', 'guess-x')],
    ['the right one', await v2('root', 'root-pw')],
    ['a console sign-in', await signIn('root', 'root-pw')],
  ] as const) {
    t.is(res.status, 429, what);
    const wait = Number(res.headers.get('retry-after'));
    t.true(wait > 0 && wait <= GUESS_WINDOW_MS / 1000, `${what}: Retry-After ${wait}`);
    t.is(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code, 'TOOMANYREQUESTS');
  }
  t.is((await v2('dev', 'dev-pw')).status, 200, 'another user from the same address');
  // A name that does not exist is counted as one that does: the answers tell nothing of which exist.
  for (let i = 0; i < GUESS_LIMIT; i++) t.is((await v2('nobody', `guess-${i}`)).status, 401);
  t.is((await v2('nobody', 'guess-x')).status, 429);
});

test('REGISTRY_AUTH_HTPASSWD_MAXFAILURES=0 turns the bound off', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-guess-off-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw' });
  const registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_HTPASSWD_MAXFAILURES: '0' },
  });
  t.teardown(() => registry.close());
  for (let i = 0; i < GUESS_LIMIT + 5; i++) {
    t.is((await fetch(`${registry.url}/v2/`, { headers: { Authorization: basic('root', `guess-${i}`) } })).status, 401);
  }
  t.is((await fetch(`${registry.url}/v2/`, { headers: { Authorization: basic('root', 'root-pw') } })).status, 200);
});
