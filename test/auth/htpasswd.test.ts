import { renameSync } from 'node:fs';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import bcrypt from 'bcryptjs';
import { createHtpasswd, dummyCostFor, parseHtpasswd } from '../../auth/htpasswd.js';
import { writeHtpasswd } from '../helpers/auth.js';

test('parses bcrypt entries of every prefix and ignores comments and other hash kinds', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-htpasswd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'htpasswd');
  await writeHtpasswd(file, { alice: 'a', bob: 'b', carol: 'c' });
  const { readFile } = await import('node:fs/promises');
  const text = (await readFile(file, 'utf8')) + 'md5user:$apr1$abc$defghijklmnopqrstuvwx\nplain:secret\n';
  const users = parseHtpasswd(text);
  t.deepEqual([...users.keys()].sort(), ['alice', 'bob', 'carol']);
});

test('verifies passwords, refuses wrong ones and unknown users', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-htpasswd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'htpasswd');
  await writeHtpasswd(file, { alice: 'wonderland', bob: 'builder', carol: 'singer' });
  const htpasswd = createHtpasswd({ path: file });
  t.true(await htpasswd.verify('alice', 'wonderland'));
  t.true(await htpasswd.verify('bob', 'builder'));
  t.true(await htpasswd.verify('carol', 'singer'));
  t.false(await htpasswd.verify('alice', 'builder'));
  t.false(await htpasswd.verify('nobody', 'wonderland'));
  // Remembered credentials still distinguish passwords.
  t.true(await htpasswd.verify('alice', 'wonderland'));
  t.false(await htpasswd.verify('alice', 'wonderland2'));
});

test('a changed file takes effect without a restart, also for remembered credentials', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-htpasswd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'htpasswd');
  await writeHtpasswd(file, { alice: 'old' });
  const htpasswd = createHtpasswd({ path: file, recheckMs: 0 });
  t.true(await htpasswd.verify('alice', 'old'));
  await writeHtpasswd(file, { alice: 'new', dave: 'd' });
  // Make sure the modification time moves even on coarse clocks.
  const later = new Date(Date.now() + 5000);
  await utimes(file, later, later);
  t.false(await htpasswd.verify('alice', 'old'));
  t.true(await htpasswd.verify('alice', 'new'));
  t.true(await htpasswd.verify('dave', 'd'));
  await writeFile(file, '');
  const evenLater = new Date(Date.now() + 10_000);
  await utimes(file, evenLater, evenLater);
  t.false(await htpasswd.verify('alice', 'new'));
});

test('fingerprint waits for a look at the file that is due, as verify does: a removed user has none at once', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-htpasswd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'htpasswd');
  await writeHtpasswd(file, { alice: 'a', bob: 'b' });
  const htpasswd = createHtpasswd({ path: file, recheckMs: 0 });
  const before = await htpasswd.fingerprint('alice');
  t.truthy(before);
  // With no look at the file due or under way, the answer comes without a promise (a token's
  // check on every request).
  const settled = createHtpasswd({ path: file, recheckMs: 60_000 });
  await settled.fingerprint('alice');
  t.is(typeof settled.fingerprint('alice'), 'string');

  await writeHtpasswd(file, { bob: 'b' });
  const later = new Date(Date.now() + 5000);
  await utimes(file, later, later);
  // The first question after the change is answered from the new file, not the one in hand.
  t.is(await htpasswd.fingerprint('alice'), undefined);
  t.truthy(await htpasswd.fingerprint('bob'));
  t.not(await htpasswd.fingerprint('bob'), before);
});

test('a missing file locks everyone out', async (t) => {
  const htpasswd = createHtpasswd({ path: '/nonexistent/htpasswd', onError: () => undefined });
  t.false(await htpasswd.verify('alice', 'x'));
});

test('requests presenting the same new credentials at once share one bcrypt check', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-htpasswd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'htpasswd');
  await writeHtpasswd(file, { alice: 'wonderland', bob: 'builder' });
  let checks = 0;
  const htpasswd = createHtpasswd({ path: file, recheckMs: 60_000, onCheck: () => void (checks += 1) });

  // 16 connections of one client, as docker opens for a pull.
  const right = await Promise.all(Array.from({ length: 16 }, async () => htpasswd.verify('alice', 'wonderland')));
  t.deepEqual(right, Array(16).fill(true));
  t.is(checks, 1);
  // Remembered from then on, and answered at once: not a promise to wait for.
  t.is(htpasswd.verify('alice', 'wonderland'), true);
  t.is(checks, 1);

  // Wrong ones share a check too, and are not remembered: the next try is checked again.
  const wrong = await Promise.all(Array.from({ length: 16 }, async () => htpasswd.verify('bob', 'wonderland')));
  t.deepEqual(wrong, Array(16).fill(false));
  t.is(checks, 2);
  t.false(await htpasswd.verify('bob', 'wonderland'));
  t.is(checks, 3);
  // Different credentials at the same moment are each checked on their own.
  const mixed = await Promise.all([
    htpasswd.verify('bob', 'builder'),
    htpasswd.verify('bob', 'wonderland'),
    htpasswd.verify('nobody', 'x'),
  ]);
  t.deepEqual(mixed, [true, false, false]);
  t.is(checks, 6);
});

test('a password changed while its check runs counts for that request only', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-htpasswd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'htpasswd');
  // alice's password "old" at cost 14, made once (bcrypt.hashSync('old', 14)): checking it takes
  // over a second. bcryptjs works in slices of up to 100 ms, and the reload below needs a few
  // turns of the event loop between them.
  await writeFile(file, 'alice:$2b$14$.ltIc0ZLPL8L5WMxSB2dL.sW6sZV6RjTrf15kb9p02BQ6jegG/w.m\n');
  const changed = path.join(dir, 'htpasswd.new');
  await writeHtpasswd(changed, { alice: 'new' });
  const later = new Date(Date.now() + 5000);
  await utimes(changed, later, later);
  let bcryptStarted!: () => void;
  const started = new Promise<void>((resolve) => (bcryptStarted = resolve));
  const htpasswd = createHtpasswd({ path: file, recheckMs: 0, onCheck: () => bcryptStarted() });

  const first = htpasswd.verify('alice', 'old');
  await started;
  // The administrator changes alice's password while that check runs (synchronously, so the
  // change is in place before bcrypt's next slice).
  renameSync(changed, file);
  // A request after the change is checked against the new file, not handed the old answer...
  t.false(await htpasswd.verify('alice', 'old'));
  // ...the one that asked before it gets the old file's answer...
  t.true(await first);
  // ...and that answer is not remembered for anyone after it.
  t.false(await htpasswd.verify('alice', 'old'));
  t.true(await htpasswd.verify('alice', 'new'));
});

/** An htpasswd file whose entries have these bcrypt costs, as `htpasswd -B -C <cost>` writes them. */
async function writeCosts(file: string, costs: number[]): Promise<void> {
  const lines = costs.map((cost, i) => `user${i}:${bcrypt.hashSync(`pw${i}`, cost).replace(/^\$2[ab]\$/, '$2y$')}`);
  await writeFile(file, `${lines.join('\n')}\n`);
}

test('unknown users are checked at the cost most of the file uses, followed across reloads', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-htpasswd-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'htpasswd');
  // `htpasswd -B` writes cost 5: an unknown user must not cost a fixed 10.
  await writeCosts(file, [5, 5, 5]);
  const reloads: [number, number][] = [];
  const htpasswd = createHtpasswd({ path: file, recheckMs: 0, onReload: (users, cost) => reloads.push([users, cost]) });
  t.false(await htpasswd.verify('nobody', 'x'));
  t.deepEqual(reloads, [[3, 5]]);

  // The file changes to mostly cost 6: the dummy is made again at 6 before the next check.
  await writeCosts(file, [6, 4, 6]);
  const later = new Date(Date.now() + 5000);
  await utimes(file, later, later);
  t.false(await htpasswd.verify('nobody', 'x'));
  t.true(await htpasswd.verify('user1', 'pw1'));
  t.deepEqual(reloads, [
    [3, 5],
    [3, 6],
  ]);
});

test('the dummy cost is the most common one, the higher of a tie, bcrypt’s default without entries', (t) => {
  const hashes = (costs: number[]) => new Map(costs.map((cost, i) => [`u${i}`, `$2y$${String(cost).padStart(2, '0')}$${'a'.repeat(53)}`]));
  t.is(dummyCostFor(hashes([5, 5, 12])), 5);
  t.is(dummyCostFor(hashes([12, 5, 5, 12])), 12);
  t.is(dummyCostFor(hashes([4])), 4);
  t.is(dummyCostFor(new Map()), 10);
});

test('entries with a cost bcrypt cannot check are ignored, not fatal to the file', (t) => {
  const valid = bcrypt.hashSync('pw', 4);
  const users = parseHtpasswd(`ok:${valid}\nlow:$2y$03$${'a'.repeat(53)}\nhigh:$2y$32$${'a'.repeat(53)}\n`);
  t.deepEqual([...users.keys()], ['ok']);
});
