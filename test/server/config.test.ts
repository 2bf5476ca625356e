import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ConfigError, loadConfig, parseAddr } from '../../server/config.js';

test('defaults: port 5000 on every interface, ./data, embedded database, deletes on', (t) => {
  const config = loadConfig({ env: {} });
  t.is(config.http.addr, ':5000');
  t.deepEqual(parseAddr(config.http.addr), { port: 5000 });
  t.is(config.storage.filesystem.rootdirectory, './data/storage');
  t.is(config.database.url, undefined);
  t.is(config.database.datadirectory, './data/database');
  t.true(config.storage.delete.enabled);
});

test('the Go registry variable names set the same settings', (t) => {
  const config = loadConfig({
    env: {
      REGISTRY_HTTP_ADDR: '127.0.0.1:6000',
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: '/var/lib/registry',
      REGISTRY_STORAGE_DELETE_ENABLED: 'false',
      REGISTRY_LOG_LEVEL: 'debug',
      REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
      REGISTRY_HTTP_TLS_CERTIFICATE: '/c.pem',
      REGISTRY_HTTP_TLS_KEY: '/k.pem',
      REGISTRY_DATABASE_URL: 'postgres://x@y/z',
      PATH: '/usr/bin',
    },
  });
  t.deepEqual(parseAddr(config.http.addr), { host: '127.0.0.1', port: 6000 });
  t.is(config.storage.filesystem.rootdirectory, '/var/lib/registry');
  t.false(config.storage.delete.enabled);
  t.is(config.log.level, 'debug');
  t.true(config.log.accesslog.disabled);
  t.deepEqual(config.http.tls, { certificate: '/c.pem', key: '/k.pem' });
  t.is(config.database.url, 'postgres://x@y/z');
});

test('a YAML file in the Go registry layout, overridden by the environment', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-config-'));
  const file = path.join(dir, 'config.yml');
  await writeFile(
    file,
    ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', '    rootdirectory: /from/file', 'http:', '  addr: :7000', ''].join('\n'),
  );
  const config = loadConfig({ env: { REGISTRY_HTTP_ADDR: ':8000' }, file });
  t.is(config.log.level, 'warn');
  t.is(config.storage.filesystem.rootdirectory, '/from/file');
  t.is(config.http.addr, ':8000');
  const viaEnv = loadConfig({ env: { REGISTRY_CONFIGURATION_PATH: file } });
  t.is(viaEnv.http.addr, ':7000');
});

test('every problem is reported at once, named by its variable', (t) => {
  const err = t.throws(
    () => loadConfig({ env: { REGISTRY_HTTP_ADDR: 'nonsense', REGISTRY_LOG_LEVEL: 'loud', REGISTRY_STORAGE_DELETE_ENABLED: 'maybe' } }),
    { instanceOf: ConfigError },
  );
  t.is(err?.problems.length, 3);
  t.regex(err?.message ?? '', /REGISTRY_HTTP_ADDR/);
  t.regex(err?.message ?? '', /REGISTRY_LOG_LEVEL/);
  t.regex(err?.message ?? '', /REGISTRY_STORAGE_DELETE_ENABLED/);
});

test('an unreadable or malformed file is a configuration error', async (t) => {
  t.throws(() => loadConfig({ env: {}, file: '/nonexistent/config.yml' }), { instanceOf: ConfigError });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-config-'));
  const file = path.join(dir, 'bad.yml');
  await writeFile(file, 'http: [unclosed');
  t.throws(() => loadConfig({ env: {}, file }), { instanceOf: ConfigError });
});
