// Pull-through from a real upstream (Debian's Go registry behind a counting proxy): a manifest and
// its blobs are fetched once and then served from here; concurrent pulls of one cold blob share
// one upstream fetch; bytes that do not match their digest are never completed to a client nor
// stored; a tag is asked again after the TTL; with the upstream down, the cache is served and the
// log says so, and what was never cached is a 503 naming the upstream. `signet mirror run` copies
// the tags matching a glob and skips those present; a schedule does the same by itself. Blobs
// fetched into a mirror project count against its quota.
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { testWithCommands } from '../helpers/env.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, imageOf, makeImage, makeIndex, OCI_LAYER, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { run, type RunResult } from '../helpers/run.js';
import { until } from '../helpers/wait.js';
import {
  GO_REGISTRY,
  pushBlobTo,
  startBlobStore,
  startCountingProxy,
  startGoRegistry,
  type CountingProxy,
  type GoRegistry,
} from '../helpers/upstream.js';

interface Context {
  upstream: GoRegistry;
  proxy: CountingProxy;
  signet: TestRegistry;
  logs: CapturedLog;
}
const test = testWithCommands<Context>('mirror pull-through', [GO_REGISTRY]);
type T = ExecutionContext<Context>;

test.before(async (t) => {
  t.context.upstream = await startGoRegistry();
  t.context.proxy = await startCountingProxy(t.context.upstream.port);
  t.context.logs = captureLog('info');
  // The registry's tag TTL is an hour; the mirror projects of most tests ask again at every pull.
  t.context.signet = await startTestRegistry({
    env: { REGISTRY_PROXY_TAGTTL: '1h', REGISTRY_PROXY_TIMEOUT: '5' },
    log: t.context.logs.log,
  });
});
test.after.always(async (t) => {
  await t.context.signet?.close();
  await t.context.proxy?.close();
  await t.context.upstream?.stop();
});

let projects = 0;
/** A mirror project of its own in front of `upstreamUrl` (default: the counting proxy), asking tags again at every pull unless `ttl`. */
async function mirrorProject(t: T, upstreamUrl = t.context.proxy.url, ttl: 'default' | 0 = 0): Promise<string> {
  const name = `mirror${++projects}`;
  const res = await fetch(`${t.context.signet.url}/api/v1/projects`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, mirror: { upstream: upstreamUrl, ...(ttl === 0 ? { tagTtlSeconds: 0 } : {}) } }),
  });
  t.is(res.status, 201, await res.clone().text());
  return name;
}

/** A counting proxy of the test's own in front of the upstream (closed with the test), and a mirror project of it. */
async function ownUpstream(t: T): Promise<{ own: CountingProxy; project: string }> {
  const own = await startCountingProxy(t.context.upstream.port);
  t.teardown(() => own.close());
  return { own, project: await mirrorProject(t, own.url) };
}

async function pushUpstream(t: T, repository: string, image: Image, tag: string): Promise<void> {
  const upstream = createClient(t.context.upstream.url);
  for (const blob of [image.config, ...image.layers]) t.is(await pushBlobTo(t.context.upstream.url, repository, blob), 201);
  t.is((await upstream.pushManifest(repository, tag, image.manifest)).status, 201);
}

const sha = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

test('a cold pull fetches the manifest and blobs once; a warm pull asks the upstream only for the tag', async (t) => {
  const project = await mirrorProject(t);
  const image = makeImage({ layers: 2, layerBytes: 64 * 1024 });
  await pushUpstream(t, 'team/app', image, 'v1');
  const signet = createClient(t.context.signet.url);
  const { proxy } = t.context;
  for (let round = 0; round < 2; round += 1) {
    const manifest = await signet.getManifest(`${project}/team/app`, 'v1');
    t.is(manifest.status, 200);
    t.is(manifest.headers.get('docker-content-digest'), image.manifest.digest);
    t.true(Buffer.from(await manifest.arrayBuffer()).equals(image.manifest.data), 'byte for byte as upstream');
    for (const blob of [image.config, ...image.layers]) {
      const res = await signet.request(`/v2/${project}/team/app/blobs/${blob.digest}`);
      t.is(res.status, 200);
      t.is(sha(Buffer.from(await res.arrayBuffer())), blob.digest);
    }
  }
  for (const blob of [image.config, ...image.layers]) {
    t.is(proxy.count('GET', new RegExp(`/v2/team/app/blobs/${blob.digest}$`)), 1, 'each blob fetched once');
  }
  t.is(proxy.count('GET', /\/v2\/team\/app\/manifests\/v1$/), 1, 'the manifest fetched once');
  t.true(proxy.count('HEAD', /\/v2\/team\/app\/manifests\/v1$/) >= 1, 'the tag checked again (TTL 0)');
  // By digest: served from here, the upstream not asked.
  const byDigest = new RegExp(`/team/app/manifests/${image.manifest.digest}$`);
  t.is((await signet.getManifest(`${project}/team/app`, image.manifest.digest)).status, 200);
  t.is(proxy.count('GET', byDigest), 0);
});

test('8 concurrent pulls of a cold 32 MiB layer share one upstream fetch', async (t) => {
  const project = await mirrorProject(t);
  const layer = blobOf(randomBytes(32 * 1024 * 1024), OCI_LAYER);
  const image = imageOf({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, [layer], {
    os: 'linux',
    architecture: 'amd64',
  });
  await pushUpstream(t, 'big/app', image, 'v1');
  const signet = createClient(t.context.signet.url);
  t.is((await signet.getManifest(`${project}/big/app`, 'v1')).status, 200);
  const pulls = await Promise.all(
    Array.from({ length: 8 }, async () => {
      const res = await signet.request(`/v2/${project}/big/app/blobs/${layer.digest}`);
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const chunk of res.body!) {
        hash.update(chunk as Uint8Array);
        bytes += (chunk as Uint8Array).length;
      }
      return { status: res.status, bytes, digest: `sha256:${hash.digest('hex')}` };
    }),
  );
  for (const pull of pulls) t.deepEqual(pull, { status: 200, bytes: layer.size, digest: layer.digest });
  // The pulls complete once the bytes matched, maybe before the blob is fsynced and linked; a pull
  // right after waits for that (it is served from storage), and asks the upstream nothing.
  const next = await signet.request(`/v2/${project}/big/app/blobs/${layer.digest}`);
  t.is(next.status, 200);
  t.is(sha(Buffer.from(await next.arrayBuffer())), layer.digest);
  t.is(t.context.proxy.count('GET', new RegExp(`/blobs/${layer.digest}$`)), 1);
  t.is(await t.context.signet.registry.deps.metadata.blobs.find(`${project}/big/app`, layer.digest), layer.size);
});

test('bytes that do not match their digest are never completed to a client nor stored, manifests nor blobs', async (t) => {
  const project = await mirrorProject(t);
  const image = makeImage({ layers: 1, layerBytes: 256 * 1024 });
  await pushUpstream(t, 'bad/app', image, 'v1');
  const signet = createClient(t.context.signet.url);
  t.is((await signet.getManifest(`${project}/bad/app`, 'v1')).status, 200);
  const layer = image.layers[0]!;
  t.context.proxy.corrupt(new RegExp(`/blobs/${layer.digest}$`));
  try {
    const received = await signet
      .request(`/v2/${project}/bad/app/blobs/${layer.digest}`)
      .then(async (res) => ({ status: res.status, body: Buffer.from(await res.arrayBuffer()) }))
      .catch((err: unknown) => err as Error);
    // Cut before the end: the client never holds a complete wrong body.
    t.true(received instanceof Error || received.body.length < layer.size || received.status !== 200, 'no complete response');
    const link = await t.context.signet.registry.deps.metadata.blobs.find(`${project}/bad/app`, layer.digest);
    t.is(link, undefined, 'nothing linked');
  } finally {
    t.context.proxy.corrupt(undefined);
  }
  const res = await signet.request(`/v2/${project}/bad/app/blobs/${layer.digest}`);
  t.is(res.status, 200);
  t.is(sha(Buffer.from(await res.arrayBuffer())), layer.digest);

  // A manifest asked for by digest whose bytes are not that digest's: 502, nothing stored.
  const other = makeImage({ layers: 1 });
  await pushUpstream(t, 'bad/app', other, 'v2');
  t.context.proxy.corrupt(new RegExp(`/manifests/${other.manifest.digest}$`));
  try {
    const refused = await signet.getManifest(`${project}/bad/app`, other.manifest.digest);
    t.is(refused.status, 502);
    t.regex(((await refused.json()) as { errors: { code: string; message: string }[] }).errors[0]?.message ?? '', /arrived as sha256:/);
    t.is(await t.context.signet.registry.deps.metadata.manifests.find(`${project}/bad/app`, other.manifest.digest), undefined);
  } finally {
    t.context.proxy.corrupt(undefined);
  }
});

test('an index comes with its platform manifests; a moved tag is followed', async (t) => {
  const project = await mirrorProject(t);
  const amd = makeImage({ layers: 1, architecture: 'amd64' });
  const arm = makeImage({ layers: 1, architecture: 'arm64' });
  const upstream = createClient(t.context.upstream.url);
  for (const image of [amd, arm]) await pushUpstream(t, 'multi/app', image, image.manifest.digest);
  const index = makeIndex([amd, arm]);
  t.is((await upstream.pushManifest('multi/app', 'v1', index)).status, 201);
  const signet = createClient(t.context.signet.url);
  t.is((await signet.getManifest(`${project}/multi/app`, 'v1')).headers.get('docker-content-digest'), index.digest);
  const armPath = new RegExp(`/multi/app/manifests/${arm.manifest.digest}$`);
  t.is(t.context.proxy.count('GET', armPath), 1, 'the platform manifest was fetched with its index');
  t.is((await signet.getManifest(`${project}/multi/app`, arm.manifest.digest)).status, 200);
  t.is(t.context.proxy.count('GET', armPath), 1, 'and is served from here');
  // The tag moves upstream: the next pull (TTL 0) follows it.
  await pushUpstream(t, 'multi/app', amd, 'v1');
  t.is((await signet.getManifest(`${project}/multi/app`, 'v1')).headers.get('docker-content-digest'), amd.manifest.digest);
});

test('with the upstream down the cache is served and logged; what was never cached is a 503', async (t) => {
  const { own, project } = await ownUpstream(t);
  const image = makeImage({ layers: 1 });
  await pushUpstream(t, 'down/app', image, 'v1');
  const signet = createClient(t.context.signet.url);
  t.is((await signet.getManifest(`${project}/down/app`, 'v1')).status, 200);
  t.is((await signet.request(`/v2/${project}/down/app/blobs/${image.layers[0]!.digest}`)).status, 200);
  await own.setDown(true);
  const cached = await signet.getManifest(`${project}/down/app`, 'v1');
  t.is(cached.status, 200);
  t.is(cached.headers.get('docker-content-digest'), image.manifest.digest);
  t.is((await signet.request(`/v2/${project}/down/app/blobs/${image.layers[0]!.digest}`)).status, 200);
  const warned = t.context.logs.withMessage('upstream unreachable: serving the cached manifest');
  t.true(warned.some((line) => line.repository === `${project}/down/app` && line.upstream === own.url));
  const never = await signet.getManifest(`${project}/down/app`, 'v2');
  t.is(never.status, 503);
  const body = (await never.json()) as { errors: { code: string; message: string }[] };
  t.is(body.errors[0]?.code, 'UNAVAILABLE');
  t.regex(body.errors[0]?.message ?? '', new RegExp(`upstream ${own.url.replace(/[./]/g, '\\$&')} is unavailable`));
});

test('a tag is served from the cache until its TTL passes (REGISTRY_PROXY_TAGTTL)', async (t) => {
  const project = await mirrorProject(t, t.context.proxy.url, 'default');
  const first = makeImage({ layers: 1 });
  await pushUpstream(t, 'ttl/app', first, 'v1');
  const signet = createClient(t.context.signet.url);
  t.is((await signet.getManifest(`${project}/ttl/app`, 'v1')).headers.get('docker-content-digest'), first.manifest.digest);
  await pushUpstream(t, 'ttl/app', makeImage({ layers: 1 }), 'v1');
  const asked = (): number =>
    t.context.proxy.count('HEAD', /\/ttl\/app\/manifests\/v1$/) + t.context.proxy.count('GET', /\/ttl\/app\/manifests\/v1$/);
  const before = asked();
  t.is((await signet.getManifest(`${project}/ttl/app`, 'v1')).headers.get('docker-content-digest'), first.manifest.digest);
  t.is(asked(), before, 'within the TTL the upstream is not asked');
});

const MAIN = path.resolve('server/main.ts');
function signetCli(t: T, args: string[]): Promise<RunResult> {
  return run(process.execPath, ['--import', 'tsx', MAIN, '--registry', t.context.signet.url, ...args], { timeoutMs: 60_000 });
}

test('signet mirror run copies the matching tags and skips those present; a schedule runs by itself', async (t) => {
  const project = await mirrorProject(t);
  const images = new Map<string, Image>();
  for (const tag of ['8.0', '8.1', '9.0']) {
    const image = makeImage({ layers: 1 });
    images.set(tag, image);
    await pushUpstream(t, 'sched/ubi', image, tag);
  }
  const signet = createClient(t.context.signet.url);
  // 8.0 pulled whole before: present.
  t.is((await signet.getManifest(`${project}/sched/ubi`, '8.0')).status, 200);
  for (const blob of [images.get('8.0')!.config, ...images.get('8.0')!.layers]) {
    t.is((await signet.request(`/v2/${project}/sched/ubi/blobs/${blob.digest}`)).status, 200);
  }
  const { stdout, stderr } = await signetCli(t, ['mirror', 'run', project, '--repository', 'sched/ubi', '--tags', '8.*']);
  t.regex(stdout, /2 tag\(s\) matched; copied 1, skipped 1 already present \(8\.0\), 0 failed/);
  t.regex(stderr, /1\/2 8\.0: present/);
  t.regex(stderr, /2\/2 8\.1: copied/);
  const linked = (image: Image) =>
    t.context.signet.registry.deps.metadata.blobs.findMany(`${project}/sched/ubi`, [
      image.config.digest,
      ...image.layers.map((l) => l.digest),
    ]);
  t.is((await linked(images.get('8.1')!)).size, 2, 'the copied tag has its blobs here');
  t.is(
    await t.context.signet.registry.deps.metadata.tags.find(`${project}/sched/ubi`, '9.0'),
    undefined,
    'a tag that does not match is not copied',
  );

  // A schedule of every tag: runs at once (the settings changed), copies 9.0, skips the others.
  await signetCli(t, ['mirror', 'schedule', project, '--rule', 'sched/ubi=*', '--every', '1h']);
  const db = t.context.signet.registry.db;
  let report: { copied: number; skipped: string[] }[] | undefined;
  t.true(
    await until(async () => {
      const rows = await db.query<{ report: typeof report }>(
        `SELECT report FROM maintenance_runs WHERE name = $1 AND finished_at IS NOT NULL`,
        [`mirror:${project}`],
      );
      report = rows[0]?.report;
      return report !== undefined;
    }, 30_000),
  );
  t.is(report![0]!.copied, 1);
  t.deepEqual(report![0]!.skipped, ['8.0', '8.1']);
  t.is((await linked(images.get('9.0')!)).size, 2);
});

test('an upstream with token authentication is pulled with the mirror credentials; wrong ones are named', async (t) => {
  const guarded = await startCountingProxy(t.context.upstream.port);
  try {
    const image = makeImage({ layers: 1 });
    await pushUpstream(t, 'private/app', image, 'v1');
    guarded.requireToken({ username: 'bot', password: 'bot-pw' });
    const create = (name: string, password: string): Promise<Response> =>
      fetch(`${t.context.signet.url}/api/v1/projects`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name, mirror: { upstream: guarded.url, username: 'bot', password } }),
      });
    t.is((await create('tokened', 'bot-pw')).status, 201);
    t.is((await create('wrongpw', 'not-it')).status, 201);
    const signet = createClient(t.context.signet.url);
    t.is((await signet.getManifest('tokened/private/app', 'v1')).status, 200);
    const layer = await signet.request(`/v2/tokened/private/app/blobs/${image.layers[0]!.digest}`);
    t.is(layer.status, 200);
    t.is(sha(Buffer.from(await layer.arrayBuffer())), image.layers[0]!.digest);
    t.true(guarded.count('GET', /^\/token\?/) >= 1, 'a token was asked for');
    const refused = await signet.getManifest('wrongpw/private/app', 'v1');
    t.is(refused.status, 502);
    const body = (await refused.json()) as { errors: { code: string; message: string }[] };
    t.is(body.errors[0]?.code, 'UPSTREAM_FAILED');
    t.regex(body.errors[0]?.message ?? '', /token endpoint refused the credentials/);
    t.false(JSON.stringify(body).includes('not-it'));
  } finally {
    await guarded.close();
  }
});

test('blob GETs redirected to another origin are followed without the credentials, as an object store requires', async (t) => {
  const guarded = await startCountingProxy(t.context.upstream.port);
  const store = await startBlobStore(t.context.upstream.port);
  try {
    const image = makeImage({ layers: 2 });
    await pushUpstream(t, 'redirected/app', image, 'v1');
    guarded.requireToken({ username: 'bot', password: 'bot-pw' });
    guarded.redirectBlobs(store.url);
    const res = await fetch(`${t.context.signet.url}/api/v1/projects`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'redirected', mirror: { upstream: guarded.url, username: 'bot', password: 'bot-pw' } }),
    });
    t.is(res.status, 201);
    const signet = createClient(t.context.signet.url);
    t.is((await signet.getManifest('redirected/redirected/app', 'v1')).status, 200);
    for (const layer of image.layers) {
      const blob = await signet.request(`/v2/redirected/redirected/app/blobs/${layer.digest}`);
      t.is(blob.status, 200);
      t.is(sha(Buffer.from(await blob.arrayBuffer())), layer.digest);
    }
    // The registry was asked with the token and answered with redirects; the store was asked without it.
    t.true(guarded.count('GET', /\/blobs\/sha256:/) >= 2);
    t.true(store.requests.filter((r) => /\/blobs\/sha256:/.test(r.line)).length >= 2, JSON.stringify(store.requests));
    t.false(
      store.requests.some((r) => r.authorization),
      'no credentials sent to another origin',
    );
  } finally {
    await guarded.close();
    await store.close();
  }
});

test('an upstream that stalls in the middle of a blob is given up after REGISTRY_PROXY_TIMEOUT; the next pull fetches again', async (t) => {
  const { own, project } = await ownUpstream(t);
  const layer = blobOf(randomBytes(4 * 1024 * 1024), OCI_LAYER);
  t.is(await pushBlobTo(t.context.upstream.url, 'stalled/app', layer), 201);
  own.stall(new RegExp(layer.digest));
  const signet = createClient(t.context.signet.url);
  const started = Date.now();
  // The answer started (headers, the first KiB), then nothing: the body ends in an error, not never.
  const stalled = await signet.request(`/v2/${project}/stalled/app/blobs/${layer.digest}`).then(
    async (res) => Buffer.from(await res.arrayBuffer()).length,
    (err: unknown) => err as Error,
  );
  if (typeof stalled === 'number') t.true(stalled < layer.data.length, `${stalled} bytes`);
  else t.pass();
  // REGISTRY_PROXY_TIMEOUT is 5 s here; fetch's own body timeout was 300 s.
  t.true(Date.now() - started < 30_000, `gave up after ${Date.now() - started} ms`);
  own.stall(undefined);
  const fetched = await until(async () => {
    const res = await signet.request(`/v2/${project}/stalled/app/blobs/${layer.digest}`);
    return res.status === 200 && sha(Buffer.from(await res.arrayBuffer())) === layer.digest;
  }, 30_000);
  t.true(fetched, 'the blob is pulled once the upstream sends it');
  t.true(own.count('GET', new RegExp(`/blobs/${layer.digest}$`)) >= 2);
});

test('an upstream that stalls in the middle of a manifest is a 503 after REGISTRY_PROXY_TIMEOUT, never a 500', async (t) => {
  const { own, project } = await ownUpstream(t);
  const image = makeImage({ layers: 1 });
  await pushUpstream(t, 'stalled/manifest', image, 'v1');
  own.stall(/\/manifests\//);
  const res = await createClient(t.context.signet.url).getManifest(`${project}/stalled/manifest`, 'v1');
  t.is(res.status, 503, await res.clone().text());
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  t.is(body.errors[0]?.code, 'UNAVAILABLE');
  t.regex(body.errors[0]?.message ?? '', /is unavailable: its answer broke off/);
  own.stall(undefined);
  t.is((await createClient(t.context.signet.url).getManifest(`${project}/stalled/manifest`, 'v1')).status, 200);
});

test('a blob held here but not upstream is never served through a mirror repository', async (t) => {
  const project = await mirrorProject(t);
  // Stored here in another project; the upstream has never seen it.
  const secret = blobOf(randomBytes(4096), OCI_LAYER);
  const signet = createClient(t.context.signet.url);
  t.is((await signet.pushBlob('private/secret', secret)).status, 201);
  const res = await signet.request(`/v2/${project}/team/app/blobs/${secret.digest}`);
  t.is(res.status, 404);
  t.is(((await res.json()) as { errors: { code: string }[] }).errors[0]?.code, 'BLOB_UNKNOWN');
  t.is(await t.context.signet.registry.deps.metadata.blobs.find(`${project}/team/app`, secret.digest), undefined);
  t.is(t.context.proxy.count('GET', new RegExp(`/blobs/${secret.digest}$`)), 1, 'the upstream was asked, and said no');
});

test("content fetched into a mirror project counts against the project's quota: past it a pull is refused and nothing stored", async (t) => {
  const project = await mirrorProject(t);
  const image = makeImage({ layers: 1, layerBytes: 64 * 1024 });
  await pushUpstream(t, 'quota/app', image, 'v1');
  const signet = createClient(t.context.signet.url);
  t.is((await signet.getManifest(`${project}/quota/app`, 'v1')).status, 200);
  const setQuota = (quotaBytes: number | null) =>
    fetch(`${t.context.signet.url}/api/v1/projects/${project}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ quotaBytes }),
    });
  t.is((await setQuota(16 * 1024)).status, 200);
  const layer = image.layers[0]!;
  const refused = await signet.request(`/v2/${project}/quota/app/blobs/${layer.digest}`);
  t.is(refused.status, 403);
  const error = ((await refused.json()) as { errors: { code: string; message: string }[] }).errors[0];
  t.is(error?.code, 'DENIED');
  t.regex(error?.message ?? '', /quota exceeded/);
  t.is(await t.context.signet.registry.deps.metadata.blobs.find(`${project}/quota/app`, layer.digest), undefined, 'nothing linked');
  t.is((await setQuota(null)).status, 200);
  const served = await signet.request(`/v2/${project}/quota/app/blobs/${layer.digest}`);
  t.is(served.status, 200);
  t.is(sha(Buffer.from(await served.arrayBuffer())), layer.digest);
});
