// An upstream served over https, as every public registry is, with a certificate from a private
// CA: trusted through NODE_EXTRA_CA_CERTS (read by Node.js at start-up, so the registry runs as a
// process of its own), the mirror pulls through it; without it, the pull is refused with the
// reason and what to do, and nothing is stored.
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { testWithCommands } from '../helpers/env.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { makeTestCertificates } from '../helpers/test-ca.js';
import { GO_REGISTRY, pushBlobTo, startCountingProxy, startGoRegistry, type CountingProxy, type GoRegistry } from '../helpers/upstream.js';

interface Context {
  dir: string;
  upstream: GoRegistry;
  tls: CountingProxy;
}
const test = testWithCommands<Context>('mirror of an https upstream', [GO_REGISTRY, 'openssl']);

test.before(async (t) => {
  t.context.dir = await mkdtemp(path.join(os.tmpdir(), 'signet-tls-upstream-'));
  await makeTestCertificates(t.context.dir);
  t.context.upstream = await startGoRegistry();
  t.context.tls = await startCountingProxy(t.context.upstream.port, {
    tls: { cert: await readFile(path.join(t.context.dir, 'server.crt')), key: await readFile(path.join(t.context.dir, 'server.key')) },
  });
});
test.after.always(async (t) => {
  await t.context.tls?.close();
  await t.context.upstream?.stop();
  if (t.context.dir) await rm(t.context.dir, { recursive: true, force: true });
});

async function mirrorOf(server: ServerProcess, upstream: string): Promise<void> {
  const res = await fetch(`${server.url}/api/v1/projects`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name: 'secure', mirror: { upstream } }),
  });
  if (res.status !== 201) throw new Error(`${res.status} ${await res.text()}`);
}

test('an https upstream is mirrored once its CA is trusted (NODE_EXTRA_CA_CERTS); untrusted, the pull names the certificate', async (t) => {
  const image = makeImage({ layers: 1 });
  const upstream = createClient(t.context.upstream.url);
  for (const blob of [image.config, ...image.layers]) t.is(await pushBlobTo(t.context.upstream.url, 'app', blob), 201);
  t.is((await upstream.pushManifest('app', 'v1', image.manifest)).status, 201);
  const env = (name: string): Record<string, string> => ({
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(t.context.dir, name, 'storage'),
    REGISTRY_DATABASE_DATADIRECTORY: path.join(t.context.dir, name, 'database'),
  });

  const untrusted = await startServerProcess(env('untrusted'));
  try {
    await mirrorOf(untrusted, t.context.tls.url);
    const refused = await createClient(untrusted.url).getManifest('secure/app', 'v1');
    t.is(refused.status, 503);
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    t.is(body.errors[0]?.code, 'UNAVAILABLE');
    t.regex(body.errors[0]?.message ?? '', /TLS certificate is not trusted .*NODE_EXTRA_CA_CERTS/);
    t.is((await createClient(untrusted.url).request(`/v2/secure/app/blobs/${image.layers[0]!.digest}`)).status, 503);
  } finally {
    await untrusted.kill('SIGTERM');
  }

  const trusted = await startServerProcess({ ...env('trusted'), NODE_EXTRA_CA_CERTS: path.join(t.context.dir, 'ca.crt') });
  try {
    await mirrorOf(trusted, t.context.tls.url);
    const signet = createClient(trusted.url);
    const manifest = await signet.getManifest('secure/app', 'v1');
    t.is(manifest.status, 200);
    t.is(manifest.headers.get('docker-content-digest'), image.manifest.digest);
    const layer = await signet.request(`/v2/secure/app/blobs/${image.layers[0]!.digest}`);
    t.is(layer.status, 200);
    t.deepEqual(Buffer.from(await layer.arrayBuffer()), image.layers[0]!.data);
    t.true(t.context.tls.count('GET', /\/blobs\/sha256:/) >= 1, 'the blob came over https');
  } finally {
    await trusted.kill('SIGTERM');
  }
});
