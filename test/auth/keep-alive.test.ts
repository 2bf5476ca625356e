// Credentials on a keep-alive connection. The registry answers a connection's repeated
// Authorization header from what it found the last time, so these pin down what must never be
// carried over: to other credentials on the same connection (a proxy may carry several clients
// over one), or past a change to the htpasswd file. Serial: the second test changes a password.
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { basic, createProject, replaceHtpasswd, writeHtpasswd } from '../helpers/auth.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { until } from '../helpers/wait.js';

const USERS = { root: 'root-pw', alice: 'alice-pw', bob: 'bob-pw' };

let registry: TestRegistry;
let dir: string;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-keep-alive-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), USERS);
  registry = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
      REGISTRY_AUTH_ADMINS: 'root',
    },
  });
  // alice may read priv (its repositories are unknown: 404); bob may not (403).
  await createProject(registry.url, ['root', USERS.root], 'priv', { public: false, members: { alice: 'guest' } });
});
test.after.always(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

/** One connection for every request: the agent holds a single keep-alive socket. */
function connection() {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const sockets = new Set<unknown>();
  return {
    agent,
    sockets,
    get(urlPath: string, authorization: string): Promise<number> {
      return new Promise((resolve, reject) => {
        const req = http.get(`${registry.url}${urlPath}`, { agent, headers: { Authorization: authorization } }, (res) => {
          sockets.add(res.socket);
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
      });
    },
  };
}

test.serial('other credentials on the same connection are checked as their own', async (t) => {
  const conn = connection();
  t.teardown(() => conn.agent.destroy());
  const tags = '/v2/priv/app/tags/list';
  t.is(await conn.get(tags, basic('alice', USERS.alice)), 404);
  t.is(await conn.get(tags, basic('alice', USERS.alice)), 404);
  t.is(await conn.get(tags, basic('bob', USERS.bob)), 403);
  t.is(await conn.get(tags, basic('alice', USERS.alice)), 404);
  t.is(await conn.get(tags, basic('alice', 'not-her-password')), 401);
  t.is(await conn.get(tags, basic('bob', USERS.bob)), 403);
  t.is(await conn.get(tags, basic('alice', USERS.alice)), 404);
  t.is(conn.sockets.size, 1, 'every request went over one connection');
});

test.serial('a password changed in the htpasswd file stops working on a connection that used it', async (t) => {
  const conn = connection();
  t.teardown(() => conn.agent.destroy());
  t.is(await conn.get('/v2/', basic('alice', USERS.alice)), 200);
  t.is(await conn.get('/v2/', basic('alice', USERS.alice)), 200);
  await replaceHtpasswd(path.join(dir, 'htpasswd'), { ...USERS, alice: 'changed-pw' });
  // The registry looks at the file's modification time at most once a second: the old password
  // stops working on this connection within that, and stays refused.
  t.true(await until(async () => (await conn.get('/v2/', basic('alice', USERS.alice))) === 401, 5_000), 'the old password is refused');
  t.is(await conn.get('/v2/', basic('alice', USERS.alice)), 401);
  t.is(await conn.get('/v2/', basic('alice', 'changed-pw')), 200);
  t.is(conn.sockets.size, 1, 'every request went over one connection');
});
