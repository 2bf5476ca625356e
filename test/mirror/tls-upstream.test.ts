// The network between a mirror and its upstream, set up as on a real host, so the registry runs
// as a process of its own (Node.js reads these at start-up, the mirror with its first request):
// - an upstream served over https, as every public registry is, with a certificate from a private
//   CA: trusted through NODE_EXTRA_CA_CERTS, the mirror pulls through it; without it, the pull is
//   refused with the reason and what to do, and nothing is stored;
// - a corporate proxy: HTTPS_PROXY / HTTP_PROXY are used (a CONNECT tunnel for https, absolute
//   requests for http), loopback goes direct, as containers/image's transport does.
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { testWithCommands } from '../helpers/env.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage, type Image } from '../helpers/oci-layout.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { makeTestCertificates } from '../helpers/test-ca.js';
import {
  GO_REGISTRY,
  pushBlobTo,
  startCountingProxy,
  startForwardProxy,
  startGoRegistry,
  type CountingProxy,
  type GoRegistry,
} from '../helpers/upstream.js';

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

/** Pushes a one-layer image to the upstream as `<repository>:v1`. */
async function pushImage(t: ExecutionContext<Context>, repository: string): Promise<Image> {
  const image = makeImage({ layers: 1 });
  for (const blob of [image.config, ...image.layers]) t.is(await pushBlobTo(t.context.upstream.url, repository, blob), 201);
  t.is((await createClient(t.context.upstream.url).pushManifest(repository, 'v1', image.manifest)).status, 201);
  return image;
}

function envOf(t: ExecutionContext<Context>, name: string): Record<string, string> {
  return {
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(t.context.dir, name, 'storage'),
    REGISTRY_DATABASE_DATADIRECTORY: path.join(t.context.dir, name, 'database'),
  };
}

/** Pulls `<project>/<repository>:v1` and its layer through the mirror; both must match the upstream's. */
async function pullThrough(
  t: ExecutionContext<Context>,
  server: ServerProcess,
  repository: string,
  image: Image,
  project = 'secure',
): Promise<void> {
  const signet = createClient(server.url);
  const manifest = await signet.getManifest(`${project}/${repository}`, 'v1');
  t.is(manifest.status, 200);
  t.is(manifest.headers.get('docker-content-digest'), image.manifest.digest);
  const layer = await signet.request(`/v2/${project}/${repository}/blobs/${image.layers[0]!.digest}`);
  t.is(layer.status, 200);
  t.deepEqual(Buffer.from(await layer.arrayBuffer()), image.layers[0]!.data);
}

async function mirrorOf(server: ServerProcess, upstream: string, name = 'secure'): Promise<void> {
  const res = await fetch(`${server.url}/api/v1/projects`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, mirror: { upstream } }),
  });
  if (res.status !== 201) throw new Error(`${res.status} ${await res.text()}`);
}

test('an https upstream is mirrored once its CA is trusted (NODE_EXTRA_CA_CERTS); untrusted, the pull names the certificate', async (t) => {
  const image = await pushImage(t, 'app');
  const env = (name: string): Record<string, string> => envOf(t, name);

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
    await pullThrough(t, trusted, 'app', image);
    t.true(t.context.tls.count('GET', /\/blobs\/sha256:/) >= 1, 'the blob came over https');
  } finally {
    await trusted.kill('SIGTERM');
  }
});

test('through HTTPS_PROXY (a CONNECT tunnel) and HTTP_PROXY (absolute requests); loopback goes direct', async (t) => {
  // upstream.test resolves only in the proxy: a pull that works went through it.
  const proxy = await startForwardProxy({ 'upstream.test': '127.0.0.1' });
  t.teardown(() => proxy.close());
  const image = await pushImage(t, 'proxied');
  const server = await startServerProcess({
    ...envOf(t, 'proxied'),
    NODE_EXTRA_CA_CERTS: path.join(t.context.dir, 'ca.crt'),
    HTTPS_PROXY: proxy.url,
    HTTP_PROXY: proxy.url,
    // A NO_PROXY of its own does not undo the loopback exemption.
    NO_PROXY: 'direct.test',
  });
  try {
    await mirrorOf(server, `https://upstream.test:${t.context.tls.port}`);
    await pullThrough(t, server, 'proxied', image);
    t.deepEqual(new Set(proxy.requests), new Set([`CONNECT upstream.test:${t.context.tls.port}`]), 'https: one tunnel, nothing else');

    proxy.requests.length = 0;
    await mirrorOf(server, `http://upstream.test:${t.context.upstream.port}`, 'plain');
    await pullThrough(t, server, 'proxied', image, 'plain');
    t.true(
      proxy.requests.includes(`GET http://upstream.test:${t.context.upstream.port}/v2/proxied/blobs/${image.layers[0]!.digest}`),
      proxy.requests.join('\n'),
    );
    t.false(
      proxy.requests.some((r) => r.startsWith('CONNECT')),
      'http: absolute requests, no tunnel',
    );

    // Loopback is never proxied (as Go's transport); the proxy sees nothing of this one.
    proxy.requests.length = 0;
    await mirrorOf(server, t.context.upstream.url, 'loopback');
    await pullThrough(t, server, 'proxied', image, 'loopback');
    t.deepEqual(proxy.requests, []);
  } finally {
    await server.kill('SIGTERM');
  }
});
