import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { ConfigError, loadConfig, parseAddr, readConfig } from '../../server/config.js';

test('defaults: port 5000 on every interface, ./data, embedded database, deletes on', (t) => {
  const config = loadConfig({ env: {} });
  t.is(config.http.addr, ':5000');
  t.deepEqual(parseAddr(config.http.addr), { port: 5000 });
  t.is(config.storage.filesystem.rootdirectory, './data/storage');
  t.is(config.database.url, undefined);
  t.is(config.database.datadirectory, './data/database');
  t.true(config.storage.delete.enabled);
  t.true(config.storage.filesystem.directio);
});

test('direct I/O for large writes can be turned off', (t) => {
  t.false(loadConfig({ env: { REGISTRY_STORAGE_FILESYSTEM_DIRECTIO: 'false' } }).storage.filesystem.directio);
  t.throws(() => loadConfig({ env: { REGISTRY_STORAGE_FILESYSTEM_DIRECTIO: 'sometimes' } }), { instanceOf: ConfigError });
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
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      '    rootdirectory: /from/file',
      'http:',
      '  addr: :7000',
      '',
    ].join('\n'),
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

// --- S3 storage (storage.s3.*, the Go registry's S3 driver names) ---

test('S3 storage: REGISTRY_STORAGE=s3 with the Go registry S3 driver variables', async (t) => {
  const config = loadConfig({
    env: {
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: 'http://minio.internal:9000',
      REGISTRY_STORAGE_S3_BUCKET: 'registry',
      REGISTRY_STORAGE_S3_ACCESSKEY: 'AKIAEXAMPLE',
      REGISTRY_STORAGE_S3_SECRETKEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      REGISTRY_STORAGE_S3_REGION: 'eu-west-1',
      REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/signet',
      REGISTRY_STORAGE_S3_SECURE: 'false',
      REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'false',
      REGISTRY_STORAGE_S3_CREATEBUCKET: 'true',
      REGISTRY_STORAGE_S3_CHUNKSIZE: String(16 * 1024 * 1024),
      REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
    },
  });
  t.deepEqual(config.storage.s3, {
    regionendpoint: 'http://minio.internal:9000',
    bucket: 'registry',
    accesskey: 'AKIAEXAMPLE',
    secretkey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    region: 'eu-west-1',
    rootdirectory: '/signet',
    secure: false,
    forcepathstyle: false,
    createbucket: true,
    chunksize: 16 * 1024 * 1024,
    idletimeout: 30,
  });
  t.true(config.storage.redirect.disable);
  const { describeStorage } = await import('../../server/config.js');
  const described = JSON.stringify(describeStorage(config));
  t.regex(described, /"bucket":"registry"/);
  t.notRegex(described, /wJalrXUtnFEMI|AKIAEXAMPLE/, 'the start-up log names no credential');
});

test('S3 storage: defaults, and no S3 section unless chosen', (t) => {
  const plain = loadConfig({ env: {} });
  t.is(plain.storage.s3, undefined);
  t.false(plain.storage.redirect.disable);
  const config = loadConfig({ env: { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_S3_BUCKET: 'blobs' } });
  t.deepEqual(config.storage.s3, {
    bucket: 'blobs',
    region: 'us-east-1',
    rootdirectory: '',
    secure: true,
    createbucket: false,
    chunksize: 10 * 1024 * 1024,
    idletimeout: 30,
  });
  // Any S3 setting selects S3, as a storage.s3 section in the Go registry's YAML does.
  t.is(loadConfig({ env: { REGISTRY_STORAGE_S3_BUCKET: 'blobs' } }).storage.s3?.bucket, 'blobs');
});

test('S3 storage: chosen without a bucket is one clear problem, naming the variable', (t) => {
  const err = t.throws(() => loadConfig({ env: { REGISTRY_STORAGE: 's3' } }), { instanceOf: ConfigError });
  t.deepEqual(err?.problems, ['REGISTRY_STORAGE_S3_BUCKET: required when REGISTRY_STORAGE=s3: the bucket that holds the blobs']);
  t.throws(() => loadConfig({ env: { REGISTRY_STORAGE: 'S3', REGISTRY_STORAGE_S3_BUCKET: '' } }), {
    message: /REGISTRY_STORAGE_S3_BUCKET: required/,
  });
});

test('S3 storage: malformed settings are reported together, without echoing the secret', (t) => {
  const secret = 'do-not-print-this-secret';
  const err = t.throws(
    () =>
      loadConfig({
        env: {
          REGISTRY_STORAGE: 's3',
          REGISTRY_STORAGE_S3_BUCKET: 'blobs',
          REGISTRY_STORAGE_S3_SECRETKEY: secret,
          REGISTRY_STORAGE_S3_REGIONENDPOINT: 'ftp://x',
          REGISTRY_STORAGE_S3_ROOTDIRECTORY: 'a/../b',
          REGISTRY_STORAGE_S3_SECURE: 'sometimes',
          REGISTRY_STORAGE_S3_CHUNKSIZE: '1048576',
        },
      }),
    { instanceOf: ConfigError },
  );
  const message = err?.message ?? '';
  for (const name of ['ACCESSKEY', 'REGIONENDPOINT', 'ROOTDIRECTORY', 'SECURE', 'CHUNKSIZE']) {
    t.regex(message, new RegExp(`REGISTRY_STORAGE_S3_${name}`), name);
  }
  t.false(message.includes(secret));
});

test('S3 storage: a bucket name S3 refuses is refused at start-up, by variable, with the rule', (t) => {
  // The minio client refuses these before sending anything; the Go registry's users know the
  // rules from S3 itself. Each used to start a registry that failed every push with 500 UNKNOWN.
  const cases: Array<[string, RegExp]> = [
    ['b', /3 to 63 characters/],
    ['x'.repeat(64), /3 to 63 characters/],
    ['My_Bucket', /lower-case letters, digits, dots and hyphens/],
    ['-blobs', /begin and end with a letter or digit/],
    ['blobs.', /begin and end with a letter or digit/],
    ['my..blobs', /no two dots/],
    ['my-.blobs', /no two dots, or a dot and a hyphen/],
    ['192.168.5.4', /IP address/],
  ];
  for (const [bucket, rule] of cases) {
    const err = t.throws(() => loadConfig({ env: { REGISTRY_STORAGE: 's3', REGISTRY_STORAGE_S3_BUCKET: bucket } }), {
      instanceOf: ConfigError,
    });
    t.is(err?.problems.length, 1, bucket);
    t.regex(err?.problems[0] ?? '', /^REGISTRY_STORAGE_S3_BUCKET: S3 bucket names/, bucket);
    t.regex(err?.problems[0] ?? '', rule, bucket);
  }
  for (const bucket of ['abc', 'my-registry.blobs', 'a'.repeat(63), 'registry-2024']) {
    t.is(loadConfig({ env: { REGISTRY_STORAGE_S3_BUCKET: bucket } }).storage.s3?.bucket, bucket);
  }
});

test('S3 storage: a region its endpoint contradicts, or no AWS region on AWS, is refused at start-up', (t) => {
  const problems = (env: Record<string, string>): string[] => {
    try {
      loadConfig({ env: { REGISTRY_STORAGE_S3_BUCKET: 'blobs', ...env } });
      return [];
    } catch (err) {
      return (err as ConfigError).problems;
    }
  };
  // Requests are signed for the configured region; S3 refuses a signature for another one.
  t.deepEqual(
    problems({ REGISTRY_STORAGE_S3_REGIONENDPOINT: 'https://s3.eu-west-1.amazonaws.com', REGISTRY_STORAGE_S3_REGION: 'us-east-1' }),
    [
      'REGISTRY_STORAGE_S3_REGION: does not match REGISTRY_STORAGE_S3_REGIONENDPOINT, an AWS endpoint in eu-west-1: set REGISTRY_STORAGE_S3_REGION=eu-west-1',
    ],
  );
  t.regex(problems({ REGISTRY_STORAGE_S3_REGIONENDPOINT: 's3-fips.us-east-2.amazonaws.com' })[0] ?? '', /an AWS endpoint in us-east-2/);
  t.deepEqual(
    problems({ REGISTRY_STORAGE_S3_REGIONENDPOINT: 'https://s3.eu-west-1.amazonaws.com', REGISTRY_STORAGE_S3_REGION: 'eu-west-1' }),
    [],
  );
  // Without an endpoint, AWS itself: the region must be one of its names.
  t.regex(
    problems({ REGISTRY_STORAGE_S3_REGION: 'europe' })[0] ?? '',
    /^REGISTRY_STORAGE_S3_REGION: expected an AWS region name such as us-east-1/,
  );
  t.deepEqual(problems({ REGISTRY_STORAGE_S3_REGION: 'us-gov-west-1' }), []);
  // Other S3 services choose their own region names.
  t.deepEqual(problems({ REGISTRY_STORAGE_S3_REGIONENDPOINT: 'http://minio.internal:9000', REGISTRY_STORAGE_S3_REGION: 'home' }), []);
  // Listed with the other problems, all at once.
  t.is(problems({ REGISTRY_STORAGE_S3_BUCKET: 'b', REGISTRY_STORAGE_S3_REGION: 'europe', REGISTRY_STORAGE_S3_CHUNKSIZE: '1' }).length, 3);
});

test('dependency timeouts: Go durations, defaults, and more than zero', (t) => {
  const defaults = loadConfig({ env: { REGISTRY_STORAGE_S3_BUCKET: 'blobs' } });
  t.is(defaults.database.connecttimeout, 10);
  t.is(defaults.database.querytimeout, 30);
  t.true(defaults.database.preparedstatements);
  t.false(loadConfig({ env: { REGISTRY_DATABASE_PREPAREDSTATEMENTS: 'false' } }).database.preparedstatements);
  t.is(defaults.storage.s3?.idletimeout, 30);
  const set = loadConfig({
    env: {
      REGISTRY_DATABASE_CONNECTTIMEOUT: '5s',
      REGISTRY_DATABASE_QUERYTIMEOUT: '1m',
      REGISTRY_STORAGE_S3_BUCKET: 'blobs',
      REGISTRY_STORAGE_S3_IDLETIMEOUT: '1500ms',
    },
  });
  t.is(set.database.connecttimeout, 5);
  t.is(set.database.querytimeout, 60);
  t.is(set.storage.s3?.idletimeout, 1.5);
  const err = t.throws(
    () =>
      loadConfig({
        env: {
          REGISTRY_DATABASE_CONNECTTIMEOUT: '0',
          REGISTRY_DATABASE_QUERYTIMEOUT: 'soon',
          REGISTRY_STORAGE_S3_BUCKET: 'blobs',
          REGISTRY_STORAGE_S3_IDLETIMEOUT: '0s',
        },
      }),
    { instanceOf: ConfigError },
  );
  t.deepEqual(err?.problems.map((p) => p.split(':')[0]).sort(), [
    'REGISTRY_DATABASE_CONNECTTIMEOUT',
    'REGISTRY_DATABASE_QUERYTIMEOUT',
    'REGISTRY_STORAGE_S3_IDLETIMEOUT',
  ]);
});

test('the mirror blob limit: 8 GiB by default, set in bytes, at least 1 MiB', (t) => {
  t.is(loadConfig({ env: {} }).proxy.maxblobsize, 8 * 1024 * 1024 * 1024);
  t.is(loadConfig({ env: { REGISTRY_PROXY_MAXBLOBSIZE: '1073741824' } }).proxy.maxblobsize, 1073741824);
  for (const value of ['1000', 'lots', '-5']) {
    const err = t.throws(() => loadConfig({ env: { REGISTRY_PROXY_MAXBLOBSIZE: value } }), { instanceOf: ConfigError });
    t.deepEqual(
      err?.problems.map((p) => p.split(':')[0]),
      ['REGISTRY_PROXY_MAXBLOBSIZE'],
      value,
    );
  }
});

test('S3 storage: a YAML storage.s3 section wins over a filesystem root set beside it', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-config-'));
  const file = path.join(dir, 'config.yml');
  await writeFile(
    file,
    [
      'storage:',
      '  filesystem:',
      '    rootdirectory: /var/lib/registry',
      '  s3:',
      '    bucket: from-file',
      '    region: us-west-2',
      '',
    ].join('\n'),
  );
  const config = loadConfig({ env: { REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/env' }, file });
  t.is(config.storage.s3?.bucket, 'from-file');
  t.is(config.storage.s3?.region, 'us-west-2');
  t.is(config.storage.s3?.rootdirectory, '/env');
  const { describeStorage } = await import('../../server/config.js');
  t.is(describeStorage(config).driver, 's3');
});

test('operations settings: defaults, Go durations, and every problem by variable name', (t) => {
  const defaults = loadConfig({ env: {} });
  t.is(defaults.http.draintimeout, 25);
  t.is(defaults.http.idletimeout, 60);
  t.is(defaults.http.debug.addr, undefined);
  t.true(defaults.http.debug.prometheus.enabled);
  t.is(defaults.http.debug.prometheus.path, '/metrics');
  t.false(defaults.storage.maintenance.readonly.enabled);
  t.is(defaults.uploads.maxconcurrent, 32);

  const set = loadConfig({
    env: {
      REGISTRY_HTTP_DRAINTIMEOUT: '1m30s',
      REGISTRY_HTTP_IDLETIMEOUT: '500ms',
      REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:5001',
      REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'false',
      REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH: '/internal/metrics',
      REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED: 'true',
      REGISTRY_UPLOADS_MAXCONCURRENT: '0',
    },
  });
  t.is(set.http.draintimeout, 90);
  t.is(set.http.idletimeout, 0.5);
  t.is(set.http.debug.addr, '127.0.0.1:5001');
  t.false(set.http.debug.prometheus.enabled);
  t.is(set.http.debug.prometheus.path, '/internal/metrics');
  t.true(set.storage.maintenance.readonly.enabled);
  t.is(set.uploads.maxconcurrent, 0);

  const error = t.throws(
    () =>
      loadConfig({
        env: {
          REGISTRY_HTTP_DRAINTIMEOUT: 'soon',
          REGISTRY_HTTP_IDLETIMEOUT: '0',
          REGISTRY_HTTP_DEBUG_ADDR: 'nowhere',
          REGISTRY_UPLOADS_MAXCONCURRENT: '-1',
        },
      }),
    { instanceOf: ConfigError },
  );
  for (const name of ['HTTP_DRAINTIMEOUT', 'HTTP_IDLETIMEOUT', 'HTTP_DEBUG_ADDR', 'UPLOADS_MAXCONCURRENT']) {
    t.regex(error.message, new RegExp(`REGISTRY_${name}`), name);
  }
});

// --- Names that are no setting: typos, other registries' settings, Kubernetes' variables ---

async function yamlFile(t: { teardown(fn: () => Promise<void>): void }, lines: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-config-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.yml');
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

test('an unknown REGISTRY_AUTH refuses to start, naming the variable and the accepted value', (t) => {
  // The Go registry refuses an unknown auth scheme; starting without authentication would open the registry.
  const typo = t.throws(() => loadConfig({ env: { REGISTRY_AUTH: 'htpassword', REGISTRY_AUTH_HTPASSWD_PATH: '/etc/htpasswd' } }), {
    instanceOf: ConfigError,
  });
  t.deepEqual(typo?.problems, [
    'REGISTRY_AUTH: unknown authentication scheme "htpassword" (did you mean htpasswd?); accepted: htpasswd, token (none at all: no authentication)',
  ]);
  const silly = t.throws(() => loadConfig({ env: { REGISTRY_AUTH: 'silly', REGISTRY_AUTH_SILLY_REALM: 'x' } }), {
    instanceOf: ConfigError,
  });
  t.regex(
    silly?.message ?? '',
    /REGISTRY_AUTH: the authentication scheme "silly" is the Go registry's, not supported by Signet; accepted: htpasswd, token/,
  );
  t.regex(silly?.message ?? '', /REGISTRY_AUTH_SILLY_REALM: /, 'settings of an unsupported scheme are refused too');
  // Accepted: any case, and an empty value (as unset).
  t.is(loadConfig({ env: { REGISTRY_AUTH: 'HTPASSWD', REGISTRY_AUTH_HTPASSWD_PATH: '/x' } }).auth.htpasswd?.path, '/x');
  t.is(loadConfig({ env: { REGISTRY_AUTH: '' } }).auth.htpasswd, undefined);
});

test('an unknown REGISTRY_STORAGE or storage driver section refuses to start', (t) => {
  t.throws(() => loadConfig({ env: { REGISTRY_STORAGE: 's4' } }), {
    message: /REGISTRY_STORAGE: unknown storage driver "s4" \(did you mean s3\?\); accepted: filesystem, s3/,
  });
  t.throws(() => loadConfig({ env: { REGISTRY_STORAGE: 'azure' } }), { message: /"azure" is the Go registry's, not supported by Signet/ });
  // A misspelt driver would otherwise keep blobs under the default ./data/storage.
  t.throws(() => loadConfig({ env: { REGISTRY_STORAGE_FILESYTEM_ROOTDIRECTORY: '/var/lib/registry' } }), {
    message: /REGISTRY_STORAGE_FILESYTEM_ROOTDIRECTORY: unknown storage driver "filesytem" \(did you mean filesystem\?\)/,
  });
  t.is(loadConfig({ env: { REGISTRY_STORAGE: 'filesystem' } }).storage.s3, undefined);
});

test('YAML: an unknown auth scheme or storage driver refuses to start, in either form the Go registry takes', async (t) => {
  const section = await yamlFile(t, ['auth:', '  htpassword:', '    realm: r', '    path: /etc/htpasswd']);
  t.throws(() => loadConfig({ env: {}, file: section }), {
    message: /auth\.htpassword: unknown authentication scheme "htpassword" \(did you mean htpasswd\?\)/,
  });
  const short = await yamlFile(t, ['storage: filesytem']);
  t.throws(() => loadConfig({ env: {}, file: short }), { message: /storage: unknown storage driver "filesytem"/ });
  const driver = await yamlFile(t, ['storage:', '  gcs:', '    bucket: b']);
  t.throws(() => loadConfig({ env: {}, file: driver }), { message: /storage\.gcs: the storage driver "gcs" is the Go registry's/ });
  const good = await yamlFile(t, ['auth: htpasswd', 'storage:', '  filesystem:', '    rootdirectory: /srv']);
  t.throws(() => loadConfig({ env: {}, file: good }), { message: /REGISTRY_AUTH_HTPASSWD_PATH: the htpasswd file path is required/ });
  t.is(loadConfig({ env: { REGISTRY_AUTH_HTPASSWD_PATH: '/h' }, file: good }).auth.htpasswd?.path, '/h');
});

test('Go registry settings that would weaken security when ignored refuse to start', async (t) => {
  const file = await yamlFile(t, ['http:', '  tls:', '    clientcas: [/etc/ca.pem]', '    letsencrypt:', '      email: a@b.c']);
  const err = t.throws(() => loadConfig({ env: {}, file }), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /http\.tls\.clientcas: not supported: Signet does not check client certificates/);
  t.regex(err?.message ?? '', /http\.tls\.letsencrypt: not supported/);
});

test('an unknown REGISTRY_ variable is a warning naming the nearest setting, and is not applied', (t) => {
  const { config, notes } = readConfig({
    env: {
      REGISTRY_LOG_LEVLE: 'debug',
      REGISTRY_STORAGE_S3_ACCESS_KEY: 'k',
      REGISTRY_HTTP_PORT: '5001',
      REGISTRY_LOG_LEVEL_X: 'y',
      REGISTRY_ZZZ: '1',
    },
  });
  t.is(config.log.level, 'info', 'REGISTRY_LOG_LEVEL_X does not replace the level');
  const warned = new Map(notes.filter((n) => n.msg === 'unknown setting ignored').map((n) => [n.fields.setting, n.fields.nearest]));
  t.is(warned.get('REGISTRY_LOG_LEVLE'), 'REGISTRY_LOG_LEVEL');
  t.is(warned.get('REGISTRY_STORAGE_S3_ACCESS_KEY'), 'REGISTRY_STORAGE_S3_ACCESSKEY');
  t.is(warned.get('REGISTRY_LOG_LEVEL_X'), 'REGISTRY_LOG_LEVEL');
  t.true(warned.has('REGISTRY_HTTP_PORT'), 'a listen port is not mistaken for a Kubernetes service link');
  t.true(warned.has('REGISTRY_ZZZ'));
  t.is(warned.get('REGISTRY_ZZZ'), undefined, 'nothing close: no suggestion');
  t.true(notes.every((n) => n.level === 'warn'));
});

test('Kubernetes service links for a Service named registry are not warned about, nor applied', (t) => {
  const { config, notes } = readConfig({
    env: {
      REGISTRY_PORT: 'tcp://10.96.0.11:5000',
      REGISTRY_PORT_5000_TCP: 'tcp://10.96.0.11:5000',
      REGISTRY_PORT_5000_TCP_PROTO: 'tcp',
      REGISTRY_PORT_5000_TCP_PORT: '5000',
      REGISTRY_PORT_5000_TCP_ADDR: '10.96.0.11',
      REGISTRY_SERVICE_HOST: '10.96.0.11',
      REGISTRY_SERVICE_PORT: '5000',
      REGISTRY_SERVICE_PORT_HTTP: '5000',
      // A Service named registry-http-tls would otherwise make an http.tls section and demand a key.
      REGISTRY_HTTP_TLS_PORT: 'tcp://10.96.0.12:443',
      REGISTRY_HTTP_TLS_SERVICE_HOST: '10.96.0.12',
    },
  });
  t.is(config.http.tls, undefined);
  t.deepEqual(
    notes.filter((n) => n.level !== 'debug'),
    [],
  );
});

test("YAML: unknown keys are warnings with the nearest key; the Go registry's own settings are named once", async (t) => {
  // The configuration the registry:2 image ships, with one typo.
  const file = await yamlFile(t, [
    'version: 0.1',
    'log:',
    '  levle: debug',
    '  fields:',
    '    service: registry',
    'storage:',
    '  cache:',
    '    blobdescriptor: inmemory',
    '  filesystem:',
    '    rootdirectory: /var/lib/registry',
    'http:',
    '  addr: :5000',
    '  headers:',
    '    X-Content-Type-Options: [nosniff]',
    'health:',
    '  storagedriver:',
    '    enabled: true',
  ]);
  const { config, notes } = readConfig({ env: { REGISTRY_HTTP_SECRET: 's' }, file });
  t.is(config.storage.filesystem.rootdirectory, '/var/lib/registry');
  const unknown = notes.filter((n) => n.msg === 'unknown setting ignored');
  t.deepEqual(
    unknown.map((n) => n.fields),
    [{ setting: 'log.levle', file, nearest: 'log.level' }],
  );
  const go = notes.filter((n) => n.msg.startsWith('Go registry settings'));
  t.deepEqual(
    go.map((n) => n.fields.settings),
    [['log.fields', 'storage.cache', 'http.headers', 'health'], ['REGISTRY_HTTP_SECRET']],
  );
});

test('a TLS certificate without its key (or the reverse) says in words that both are needed', (t) => {
  for (const [set, missing] of [
    ['REGISTRY_HTTP_TLS_CERTIFICATE', 'REGISTRY_HTTP_TLS_KEY'],
    ['REGISTRY_HTTP_TLS_KEY', 'REGISTRY_HTTP_TLS_CERTIFICATE'],
  ] as const) {
    const err = t.throws(() => loadConfig({ env: { [set]: '/etc/signet/file.pem' } }), { instanceOf: ConfigError });
    t.is(err?.problems.length, 1);
    t.true(err?.problems[0]?.startsWith(`${missing}: missing: HTTPS needs both REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY`));
  }
});

test("configuration messages are in words, never zod's defaults, and never repeat the value", (t) => {
  const secret = 'not-a-number-and-secret';
  const err = t.throws(
    () =>
      loadConfig({
        env: {
          REGISTRY_HTTP_HOST: '',
          REGISTRY_LOG_LEVEL: 'loud',
          REGISTRY_STORAGE_DELETE_ENABLED: 'maybe',
          REGISTRY_DATABASE_POOL_MAX: secret,
          REGISTRY_CACHE_TTL: '-1',
          REGISTRY_UPLOADS_MAXCONCURRENT: '1.5',
          REGISTRY_DATABASE_URL: 'mysql://db',
          REGISTRY_STORAGE_S3_BUCKET: 'blobs',
          REGISTRY_STORAGE_S3_CHUNKSIZE: '99999999999999',
        },
      }),
    { instanceOf: ConfigError },
  );
  t.deepEqual(err?.problems.sort(), [
    'REGISTRY_CACHE_TTL: must be at least 0',
    'REGISTRY_DATABASE_POOL_MAX: expected a number',
    'REGISTRY_DATABASE_URL: expected a PostgreSQL URL such as postgres://user:password@host:5432/database',
    'REGISTRY_HTTP_HOST: must not be empty (unset it instead)',
    'REGISTRY_LOG_LEVEL: expected one of: fatal, error, warn, info, debug, trace, silent',
    'REGISTRY_STORAGE_DELETE_ENABLED: expected true or false (or 1/0, yes/no, on/off)',
    'REGISTRY_STORAGE_S3_CHUNKSIZE: must be at most 5368709120',
    'REGISTRY_UPLOADS_MAXCONCURRENT: expected a whole number',
  ]);
  t.false(err?.message.includes(secret));
});
