// TLS end to end (a CA and server certificate made by the test, verified by skopeo and node),
// and the `signet` management commands against a running registry.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { testWithCommands } from '../helpers/env.js';
import { makeImage, writeOciLayout } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeTestCertificates } from '../helpers/test-ca.js';

const run = promisify(execFile);
const test = testWithCommands('TLS and signet CLI', ['openssl', 'skopeo']);
const MAIN = path.resolve('server/main.ts');

let dir: string;
let registry: TestRegistry;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-tls-'));
  await makeTestCertificates(dir);
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw', dev: 'dev-pw' });
  registry = await startTestRegistry({
    env: {
      REGISTRY_HTTP_TLS_CERTIFICATE: path.join(dir, 'server.crt'),
      REGISTRY_HTTP_TLS_KEY: path.join(dir, 'server.key'),
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
      REGISTRY_AUTH_ADMINS: 'root',
    },
  });
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function signet(args: string[], user = 'root', password = 'root-pw') {
  return run(process.execPath, ['--import', 'tsx', MAIN, '--registry', registry.url, '--user', user, ...args], {
    env: { ...process.env, SIGNET_PASSWORD: password, NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.crt') },
  });
}

test.serial('the registry serves HTTPS with the configured certificate', async (t) => {
  t.true(registry.url.startsWith('https://'));
  const status = await new Promise<number>((resolve, reject) => {
    https
      .get(
        `${registry.url}/v2/`,
        { ca: readFileSync(path.join(dir, 'ca.crt')), headers: { Authorization: basic('dev', 'dev-pw') } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      )
      .on('error', reject);
  });
  t.is(status, 200);
  // Without the CA the certificate is not trusted.
  await t.throwsAsync(new Promise((resolve, reject) => https.get(`${registry.url}/v2/`, resolve).on('error', reject)), {
    message: /self.signed|unable to verify|certificate/i,
  });
});

test.serial('signet CLI manages projects and members over the API', async (t) => {
  const created = await signet(['project', 'create', 'secure']);
  t.regex(created.stdout, /created private project secure/);
  await signet(['member', 'set', 'secure', 'dev', 'developer']);
  const members = await signet(['member', 'list', 'secure']);
  t.regex(members.stdout, /dev\s+developer/);
  t.regex(members.stdout, /root\s+admin/);
  const list = await signet(['project', 'list']);
  t.regex(list.stdout, /secure\s+private/);
  // A non-admin cannot create projects: the error is printed and the exit code is 1.
  const refused = await signet(['project', 'create', 'other'], 'dev', 'dev-pw').catch((err: { code: number; stderr: string }) => err);
  t.is((refused as { code: number }).code, 1);
  t.regex((refused as { stderr: string }).stderr, /DENIED/);
});

test.serial('skopeo copies over verified TLS with credentials (--dest-cert-dir, --dest-creds)', async (t) => {
  const certDir = path.join(dir, 'certs');
  await run('mkdir', ['-p', certDir]);
  await run('cp', [path.join(dir, 'ca.crt'), path.join(certDir, 'ca.crt')]);
  const image = makeImage({ layers: 2 });
  const layout = path.join(dir, 'layout');
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  const dest = `docker://${registry.host}/secure/app:v1`;
  await run('skopeo', ['copy', '--dest-cert-dir', certDir, '--dest-creds', 'dev:dev-pw', `oci:${layout}:v1`, dest]);
  const inspect = await run('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--creds', 'dev:dev-pw', dest]);
  t.is(inspect.stdout.trim(), image.manifest.data.toString());
  // Without the CA, skopeo refuses the connection.
  const untrusted = await run('skopeo', ['inspect', '--raw', '--creds', 'dev:dev-pw', dest]).catch((err: { stderr: string }) => err);
  t.regex(untrusted.stderr, /certificate|x509/i);
  // Wrong password: refused.
  const wrong = await run('skopeo', ['inspect', '--raw', '--cert-dir', certDir, '--creds', 'dev:nope', dest]).catch(
    (err: { stderr: string }) => err,
  );
  t.regex(wrong.stderr, /unauthorized|authentication/i);
});

test.serial('the CLI says in one line how to log in, and how to trust the registry CA', async (t) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('SIGNET_')));
  const cli = (args: string[], extra: Record<string, string>) =>
    run(process.execPath, ['--import', 'tsx', MAIN, '--registry', registry.url, ...args], { env: { ...env, ...extra } }).catch(
      (err: { code: number; stderr: string }) => err,
    );
  const anonymous = (await cli(['project', 'create', 'other'], { NODE_EXTRA_CA_CERTS: path.join(dir, 'ca.crt') })) as {
    code: number;
    stderr: string;
  };
  t.is(anonymous.code, 1);
  t.regex(anonymous.stderr, /^signet: UNAUTHORIZED: .*; log in with --user NAME \(password in SIGNET_PASSWORD or --password-stdin\)\n$/);
  const untrusted = (await cli(['project', 'list'], {})) as { code: number; stderr: string };
  t.is(untrusted.code, 1);
  t.regex(
    untrusted.stderr,
    /^signet: cannot reach the registry at https:\/\/127\.0\.0\.1:\d+: its TLS certificate .*; trust its CA with NODE_EXTRA_CA_CERTS=\/path\/to\/ca\.pem\n$/,
  );
});
