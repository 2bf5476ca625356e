// A mirror project whose settings change while a fetch from its upstream runs (an adversarial
// tester's finding): a pull after the change neither joins the old upstream's fetch nor is answered
// from the tag check it made, and a fetch from an upstream the project no longer mirrors stores
// nothing, so nothing of it is served once mirroring ended or moved.
import http from 'node:http';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { listenOnLoopback } from '../helpers/loopback-server.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, imageOf, OCI_LAYER, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { until } from '../helpers/wait.js';

interface Upstream {
  url: string;
  image: Image;
  /** Milliseconds a manifest GET is held before it is answered. */
  holdMs: number;
  /** Manifest GETs and HEADs asked of it. */
  asked: number;
  close(): Promise<void>;
}

/** An upstream holding an image of its own (`name` in its config) under tag v1 in every repository. */
async function startUpstream(name: string): Promise<Upstream> {
  const layer = blobOf(Buffer.from(`layer of ${name}\n`.repeat(50)), OCI_LAYER);
  const image = imageOf({ architecture: 'amd64', os: 'linux', name, rootfs: { type: 'layers', diff_ids: [] } }, [layer], {
    os: 'linux',
    architecture: 'amd64',
  });
  const blobs = new Map([image.config, ...image.layers].map((b) => [b.digest, b.data]));
  const upstream: Upstream = { url: '', image, holdMs: 0, asked: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/v2/') return void res.end('{}');
    const m = /^\/v2\/.+\/(manifests|blobs)\/(.+)$/.exec(path);
    if (m?.[1] === 'manifests' && (m[2] === 'v1' || m[2] === image.manifest.digest)) {
      upstream.asked += 1;
      const body = image.manifest.data;
      const send = (): void => {
        res.writeHead(200, {
          'Content-Type': image.manifest.mediaType,
          'Docker-Content-Digest': image.manifest.digest,
          'Content-Length': body.length,
        });
        res.end(req.method === 'HEAD' ? undefined : body);
      };
      if (req.method === 'GET' && upstream.holdMs > 0) setTimeout(send, upstream.holdMs);
      else send();
      return;
    }
    const data = m?.[1] === 'blobs' ? blobs.get(m[2]!) : undefined;
    if (!data) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  Object.assign(upstream, await listenOnLoopback(server));
  return upstream;
}

interface Context {
  signet: TestRegistry;
  a: Upstream;
  b: Upstream;
}
const test = anyTest as TestFn<Context>;
type T = ExecutionContext<Context>;

test.before(async (t) => {
  // A tag TTL far longer than the tests: only a change of settings may send a pull upstream again.
  const [signet, a, b] = await Promise.all([
    startTestRegistry({ env: { REGISTRY_PROXY_TAGTTL: '3600' } }),
    startUpstream('a'),
    startUpstream('b'),
  ]);
  Object.assign(t.context, { signet, a, b });
});
test.after.always(async (t) => {
  await t.context.signet?.close();
  await t.context.a?.close();
  await t.context.b?.close();
});
test.afterEach.always((t) => {
  t.context.a.holdMs = 0;
});

let projects = 0;
async function mirrorProject(t: T, upstream: Upstream): Promise<string> {
  const name = `moving${++projects}`;
  const res = await fetch(`${t.context.signet.url}/api/v1/projects`, {
    method: 'POST',
    body: JSON.stringify({ name, public: true, mirror: { upstream: upstream.url } }),
  });
  t.is(res.status, 201, await res.clone().text());
  return name;
}
async function setMirror(t: T, project: string, mirror: { upstream: string } | null): Promise<void> {
  const res = await fetch(`${t.context.signet.url}/api/v1/projects/${project}`, { method: 'PATCH', body: JSON.stringify({ mirror }) });
  t.is(res.status, 200, await res.clone().text());
}
const digestOf = (res: Response): string | null => res.headers.get('docker-content-digest');

/** A pull of `<project>/app:v1` whose fetch from A is running, A holding its answer 1.5 s. */
async function pullHeldByA(t: T, project: string): Promise<{ pulling: Promise<Response> }> {
  const { a } = t.context;
  a.holdMs = 1500;
  const asked = a.asked;
  const pulling = createClient(t.context.signet.url).getManifest(`${project}/app`, 'v1');
  t.true(await until(() => a.asked > asked, 10_000));
  // Wrapped: an async function returning the promise itself would wait for the pull.
  return { pulling };
}

test.serial('a tag pulled from the old upstream is asked of the new one once the project mirrors another', async (t) => {
  const { a, b } = t.context;
  const client = createClient(t.context.signet.url);
  const project = await mirrorProject(t, a);
  t.is(digestOf(await client.getManifest(`${project}/app`, 'v1')), a.image.manifest.digest);
  await setMirror(t, project, { upstream: b.url });
  const asked = b.asked;
  const after = await client.getManifest(`${project}/app`, 'v1');
  t.is(after.status, 200);
  t.is(digestOf(after), b.image.manifest.digest, "the new upstream's tag, not the old check's");
  t.true(b.asked > asked);
});

test.serial("a pull after the switch does not join the old upstream's fetch still running", async (t) => {
  const { a, b } = t.context;
  const client = createClient(t.context.signet.url);
  const project = await mirrorProject(t, a);
  // The fetch from A is running (A holds its answer) before the settings change.
  const { pulling: first } = await pullHeldByA(t, project);
  await setMirror(t, project, { upstream: b.url });
  const second = await client.getManifest(`${project}/app`, 'v1');
  t.is(second.status, 200);
  t.is(digestOf(second), b.image.manifest.digest);
  // The old fetch ends without storing what it brought (503: try again), and the tag stays the new upstream's.
  t.is((await first).status, 503);
  t.is(digestOf(await client.getManifest(`${project}/app`, 'v1')), b.image.manifest.digest);
  t.is((await client.getManifest(`${project}/app`, a.image.manifest.digest)).status, 404, "the old upstream's manifest was not stored");
});

test.serial('a fetch running when mirroring ended stores nothing, and nothing of it is served afterwards', async (t) => {
  const { a } = t.context;
  const client = createClient(t.context.signet.url);
  const project = await mirrorProject(t, a);
  const { pulling } = await pullHeldByA(t, project);
  await setMirror(t, project, null);
  const answer = await pulling;
  t.is(answer.status, 503, await answer.clone().text());
  t.regex(await answer.text(), /mirror settings changed/);
  t.is((await client.getManifest(`${project}/app`, 'v1')).status, 404, 'no tag was stored');
  t.is((await client.getManifest(`${project}/app`, a.image.manifest.digest)).status, 404, 'no manifest was stored');
});

test.serial(
  "moved from one upstream to another and back, a tag is the first one's again, not what the second stored under it",
  async (t) => {
    const { a, b } = t.context;
    const client = createClient(t.context.signet.url);
    const project = await mirrorProject(t, a);
    t.is(digestOf(await client.getManifest(`${project}/app`, 'v1')), a.image.manifest.digest);
    await setMirror(t, project, { upstream: b.url });
    t.is(digestOf(await client.getManifest(`${project}/app`, 'v1')), b.image.manifest.digest);
    await setMirror(t, project, { upstream: a.url });
    // The first check of A is fresh still (a tag TTL of an hour), but it vouched for A's manifest.
    t.is(digestOf(await client.getManifest(`${project}/app`, 'v1')), a.image.manifest.digest);
  },
);
