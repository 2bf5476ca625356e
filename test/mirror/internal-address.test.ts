// A public upstream may not send the mirror to an internal address: a redirect, a Bearer realm or
// a lookaside on loopback (by address or by a name resolving to it) is refused, 502 naming it, and
// the internal service is never asked; an upstream that is itself internal (as every other test's
// is, on loopback) may. The public upstream is a hostile server on loopback that the registry
// reaches by a name only an HTTP proxy resolves (as a corporate network's), so the registry takes
// it for what it would be, a public registry; loopback itself is never proxied.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { isInternalAddress } from '../../mirror/internal-address.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, imageOf, OCI_LAYER, OCI_MANIFEST, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startForwardProxy, type ForwardProxy } from '../helpers/upstream.js';

const sha = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const PUBLIC_NAME = 'registry.public.test';

interface Server {
  port: number;
  requests: string[];
  close(): Promise<void>;
}

/** Serves `image` under every repository (tag v1, its digest, its blobs); `route` may answer first. */
async function serve(image: Image, route: (req: http.IncomingMessage, res: http.ServerResponse) => boolean = () => false): Promise<Server> {
  const requests: string[] = [];
  const blobs = new Map([image.config, ...image.layers].map((b) => [b.digest, b.data]));
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (route(req, res)) return;
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v2/') return void res.end('{}');
    const m = /^\/v2\/.+\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (m?.[1] === 'manifests' && (m[2] === 'v1' || m[2] === image.manifest.digest)) {
      const body = image.manifest.data;
      res.writeHead(200, { 'Content-Type': OCI_MANIFEST, 'Docker-Content-Digest': sha(body), 'Content-Length': body.length });
      return void res.end(req.method === 'HEAD' ? undefined : body);
    }
    const data = m?.[1] === 'blobs' ? blobs.get(m[2]!) : undefined;
    if (!data) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const imageNamed = (text: string): Image => {
  const layer = blobOf(Buffer.from(text), OCI_LAYER);
  return imageOf({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, [layer], {
    os: 'linux',
    architecture: 'amd64',
  });
};

interface Context {
  signet: TestRegistry;
  logs: CapturedLog;
  proxy: ForwardProxy;
  /** An unauthenticated registry "inside" (on loopback), holding a secret image. */
  internal: Server;
  secret: Image;
  /** The hostile public upstream, as the proxy reaches it. */
  hostile: Server;
  image: Image;
}
const test = anyTest as TestFn<Context>;
type T = ExecutionContext<Context>;

test.before(async (t) => {
  t.context.secret = imageNamed('TOP SECRET internal layer\n');
  t.context.internal = await serve(t.context.secret, (req, res) => {
    if (!req.url?.startsWith('/token')) return false;
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"token":"tok-from-internal"}');
    return true;
  });
  const inside = `127.0.0.1:${t.context.internal.port}`;
  t.context.image = imageNamed('an ordinary public layer\n');
  t.context.hostile = await serve(t.context.image, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/v2\/(redir|byname|realm)\/app\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (!m) return false;
    const [, mode, kind, reference] = m;
    if (mode === 'realm') {
      if (req.headers.authorization) return false;
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${inside}/token",service="x"` }).end();
      return true;
    }
    const host = mode === 'byname' ? `localhost:${t.context.internal.port}` : inside;
    res.writeHead(307, { Location: `http://${host}/v2/secret/app/${kind}/${reference}` }).end();
    return true;
  });
  t.context.proxy = await startForwardProxy({ [PUBLIC_NAME]: '127.0.0.1' });
  // Read with the registry's first upstream request (mirror/upstream.ts); this file's process only.
  process.env.HTTP_PROXY = t.context.proxy.url;
  t.context.logs = captureLog('info');
  t.context.signet = await startTestRegistry({ env: { REGISTRY_PROXY_TIMEOUT: '5' }, log: t.context.logs.log });
});
test.after.always(async (t) => {
  await t.context.signet?.close();
  await t.context.proxy?.close();
  await t.context.hostile?.close();
  await t.context.internal?.close();
});

async function mirrorProject(t: T, name: string, mirror: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${t.context.signet.url}/api/v1/projects`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, public: true, mirror }),
  });
  t.is(res.status, 201, await res.clone().text());
}

const publicUpstream = (t: T): string => `http://${PUBLIC_NAME}:${t.context.hostile.port}`;

test.serial('internal addresses are told apart: loopback, link-local, private, unique-local, unspecified, mapped', (t) => {
  for (const a of ['127.0.0.1', '127.8.9.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '0.0.0.0'])
    t.true(isInternalAddress(a), a);
  for (const a of ['::1', '::', 'fe80::1', 'fd00::1', 'fc12::3', '::ffff:127.0.0.1', '::ffff:10.0.0.1']) t.true(isInternalAddress(a), a);
  for (const a of ['8.8.8.8', '172.32.0.1', '192.169.0.1', '1.1.1.1', '2001:4860:4860::8888', '::ffff:8.8.8.8', 'example.com'])
    t.false(isInternalAddress(a), a);
});

test.serial('a public upstream is pulled through as before; its lookaside on loopback is refused, the pull goes on', async (t) => {
  await mirrorProject(t, 'plain', { upstream: publicUpstream(t), lookaside: `http://127.0.0.1:${t.context.internal.port}/sigstore` });
  const signet = createClient(t.context.signet.url);
  const res = await signet.getManifest('plain/team/app', 'v1');
  t.is(res.status, 200);
  t.is(res.headers.get('docker-content-digest'), t.context.image.manifest.digest);
  const layer = await signet.request(`/v2/plain/team/app/blobs/${t.context.image.layers[0]!.digest}`);
  t.is(layer.status, 200);
  t.is(sha(Buffer.from(await layer.arrayBuffer())), t.context.image.layers[0]!.digest);
  t.true(
    t.context.proxy.requests.some((r) => r.startsWith(`GET http://${PUBLIC_NAME}:`)),
    'the upstream was reached through the proxy',
  );
  const refused = t.context.logs.withMessage('could not read the upstream lookaside');
  t.true(
    refused.some((l) => /refused to connect to 127\.0\.0\.1/.test(String(l.reason))),
    JSON.stringify(refused),
  );
  t.deepEqual(t.context.internal.requests, [], 'the internal service was never asked');
});

for (const [mode, what, message] of [
  ['redir', 'a redirect to a loopback address', /refused to connect to 127\.0\.0\.1: a loopback, link-local or private address/],
  ['byname', 'a redirect to a name resolving to loopback', /refused to connect to localhost \((127\.0\.0\.1|::1)\)/],
  ['realm', 'a Bearer realm on loopback', /refused to connect to 127\.0\.0\.1/],
] as const) {
  test.serial(`${what} from a public upstream is refused (502), and the internal service is never asked`, async (t) => {
    await mirrorProject(t, `ssrf${mode}`, { upstream: publicUpstream(t) });
    const res = await createClient(t.context.signet.url).getManifest(`ssrf${mode}/${mode}/app`, 'v1');
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    t.is(res.status, 502, JSON.stringify(body));
    t.is(body.errors[0]?.code, 'UPSTREAM_FAILED');
    t.regex(body.errors[0]?.message ?? '', message);
    t.deepEqual(t.context.internal.requests, [], 'the internal service was never asked');
    t.is(await t.context.signet.registry.deps.metadata.tags.find(`ssrf${mode}/${mode}/app`, 'v1'), undefined);
    const blob = await createClient(t.context.signet.url).request(
      `/v2/ssrf${mode}/${mode}/app/blobs/${t.context.secret.layers[0]!.digest}`,
    );
    t.not(blob.status, 200);
    await blob.arrayBuffer();
    t.deepEqual(t.context.internal.requests, []);
  });
}

test.serial('an upstream that is itself on loopback is trusted with loopback: pulled as before', async (t) => {
  await mirrorProject(t, 'inside', { upstream: `http://127.0.0.1:${t.context.internal.port}` });
  const res = await createClient(t.context.signet.url).getManifest('inside/secret/app', 'v1');
  t.is(res.status, 200);
  t.is(res.headers.get('docker-content-digest'), t.context.secret.manifest.digest);
  t.true(t.context.internal.requests.length > 0);
});
