// A restart answers at once: `signet serve` listens while the embedded database loads and starts
// (most of a second; seconds for initdb on a fresh directory). Meanwhile what needs no database is
// answered (GET /v2/, which `docker login` and Kubernetes probes call, with htpasswd credentials
// checked as always), /readyz says the database is starting so no balancer sends traffic yet, and
// a request that needs the database waits for it instead of failing. A database that cannot start
// still refuses the start in one line naming its setting, leaving nothing listening.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { startServerProcess } from '../helpers/server-process.js';
import { until } from '../helpers/wait.js';

async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-early-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('while the embedded database starts, GET /v2/ is answered, /readyz says starting, and a request needing it waits', async (t) => {
  const dir = await tempDir(t);
  const htpasswd = path.join(dir, 'htpasswd');
  await writeHtpasswd(htpasswd, { alice: 'secret' });
  // An empty directory: the registry runs initdb itself, which takes seconds, so the window in
  // which the database is not there yet is wide on any machine.
  const server = await startServerProcess(
    {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
      REGISTRY_AUTH_ADMINS: 'alice',
    },
    240_000,
    { seed: false },
  );
  t.teardown(() => server.kill());
  const get = (p: string, auth?: string): Promise<Response> => fetch(`${server.url}${p}`, auth ? { headers: { Authorization: auth } } : {});

  // Asked first, answered last: it needs the database.
  const tags = get('/v2/team/app/tags/list', basic('alice', 'secret'));
  const starting = await get('/readyz');
  t.is(starting.status, 503);
  const body = (await starting.json()) as { errors: { code: string; detail: { database: string } }[] };
  t.is(body.errors[0]?.code, 'UNAVAILABLE');
  t.is(body.errors[0]?.detail.database, 'starting');
  t.is((await get('/v2/', basic('alice', 'secret'))).status, 200, 'the base check with good credentials');
  const anonymous = await get('/v2/');
  t.is(anonymous.status, 401);
  t.regex(anonymous.headers.get('WWW-Authenticate') ?? '', /^Basic realm=/);
  t.is((await get('/v2/', basic('alice', 'wrong'))).status, 401, 'a wrong password is refused as always');
  t.is((await get('/readyz')).status, 503, 'all of that was answered before the database was there');

  const waited = await tags;
  t.is(waited.status, 404, 'answered once the database is open, as any unknown repository');
  t.is(((await waited.json()) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_UNKNOWN');
  t.true(await until(async () => (await get('/readyz')).status === 200, 60_000));
});

test('an embedded database that cannot start after the registry listens: one line naming the setting, exit 1, nothing listening', async (t) => {
  const dir = await tempDir(t);
  const database = path.join(dir, 'database');
  // A cluster that is not one: PG_VERSION and nothing else (no initdb is run for it).
  await mkdir(database, { recursive: true });
  await writeFile(path.join(database, 'PG_VERSION'), '17\n');
  const server = await startServerProcess(
    { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'), REGISTRY_DATABASE_DATADIRECTORY: database },
    120_000,
  ).catch((err: unknown) => err as Error);
  // On a fast machine the failure may come before the listening line; either way it is the same.
  if (!(server instanceof Error)) t.true(await until(() => server.child.exitCode !== null, 60_000), 'it stops on its own');
  const { code, stderr, port } =
    server instanceof Error
      ? { code: Number(/exited with (\d+)/.exec(server.message)?.[1]), stderr: server.message, port: undefined }
      : { code: await server.kill(), stderr: server.stderr(), port: Number(new URL(server.url).port) };
  t.is(code, 1);
  t.regex(stderr, new RegExp(`signet: cannot open the embedded database in REGISTRY_DATABASE_DATADIRECTORY \\(${database}\\): `));
  t.notRegex(stderr, /^\s+at /m, 'no stack trace');
  if (port !== undefined) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(false)));
      socket.once('error', () => resolve(true));
    });
    t.true(refused, 'the port is closed');
  }
});

test('a PostgreSQL server that does not answer: GET /v2/ is answered meanwhile, then one line naming the URL, exit 1, nothing listening', async (t) => {
  const dir = await tempDir(t);
  // Accepts connections and says nothing, as a server behind a stalled proxy: the registry
  // listens meanwhile, and stops once REGISTRY_DATABASE_CONNECTTIMEOUT has passed.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const dbPort = (silent.address() as net.AddressInfo).port;
  const server = await startServerProcess(
    {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      REGISTRY_DATABASE_URL: `postgres://signet:hunter2@127.0.0.1:${dbPort}/signet`,
      REGISTRY_DATABASE_CONNECTTIMEOUT: '3',
    },
    60_000,
    { seed: false },
  );
  t.teardown(() => server.kill());
  t.is((await fetch(`${server.url}/v2/`)).status, 200, 'answered before the database is');
  const starting = await fetch(`${server.url}/readyz`);
  t.is(starting.status, 503);
  t.is(((await starting.json()) as { errors: { detail: { database: string } }[] }).errors[0]?.detail.database, 'starting');

  t.true(await until(() => server.child.exitCode !== null, 60_000), 'it stops on its own');
  const port = Number(new URL(server.url).port);
  t.is(await server.kill(), 1);
  const stderr = server.stderr();
  t.regex(
    stderr,
    /^signet: cannot use the PostgreSQL database of REGISTRY_DATABASE_URL \(postgres:\/\/signet:\*\*\*@127\.0\.0\.1:\d+\/signet\): /,
  );
  t.is(stderr.trim().split('\n').length, 1, stderr);
  t.false(stderr.includes('hunter2'));
  const refused = await new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(true));
  });
  t.true(refused, 'the port is closed');
});
