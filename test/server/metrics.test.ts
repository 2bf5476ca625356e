// /metrics: Prometheus text, route names as labels (never raw paths), bytes in and out, the pull
// gate's decisions, the GC counters, default process metrics; off on the main port when disabled
// or when a debug address takes it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { createDebugListener, createMetrics, observeRequest } from '../../server/metrics.js';
import { cosignSign, makeCosignKey } from '../helpers/cosign.js';
import { cosignSignatureManifest } from '../helpers/signature-artifacts.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage, randomLayer } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { until } from '../helpers/wait.js';

let registry: TestRegistry;
test.before(async () => {
  registry = await startTestRegistry();
});
test.after.always(() => registry?.close());

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/** The value of one sample line (`name{labels} value`), 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

test.serial('requests are counted by route name, method and status, with a latency histogram', async (t) => {
  const client = createClient(registry.url);
  const layer = randomLayer(3000);
  t.is((await client.pushBlob('metrics/secret-team/app', layer)).status, 201);
  t.is((await client.request(`/v2/metrics/secret-team/app/blobs/${layer.digest}`)).status, 200);
  t.is((await client.request('/v2/metrics/secret-team/app/manifests/nope')).status, 404);
  t.is((await client.request('/no/such/endpoint')).status, 404);

  const res = await fetch(`${registry.url}/metrics`);
  t.is(res.status, 200);
  t.regex(res.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await res.text();
  t.is(sample(text, 'signet_http_requests_total{route="upload.start",method="POST",status="201"}'), 1);
  t.is(sample(text, 'signet_http_requests_total{route="blob.get",method="GET",status="200"}'), 1);
  t.is(sample(text, 'signet_http_requests_total{route="manifest.get",method="GET",status="404"}'), 1);
  t.is(sample(text, 'signet_http_requests_total{route="none",method="GET",status="404"}'), 1);
  t.true(sample(text, 'signet_http_request_duration_seconds_count{route="blob.get",method="GET"}') >= 1);
  t.true(text.includes('signet_http_request_duration_seconds_bucket{le="0.005",route="blob.get",method="GET"}'));
  // Bounded labels: no repository name or path reaches the metrics.
  t.false(text.includes('secret-team'));
  t.false(text.includes('/no/such'));
  // Blob bytes in and out, and no upload streaming now.
  t.is(sample(text, 'signet_blob_bytes_received_total'), layer.size);
  t.is(sample(text, 'signet_blob_bytes_sent_total'), layer.size);
  t.is(sample(text, 'signet_uploads_in_progress'), 0);
  // The GC counters exist from the start; process metrics come along.
  for (const name of ['signet_gc_runs_total', 'signet_gc_blobs_removed_total', 'signet_gc_bytes_removed_total']) {
    t.true(text.includes(`# TYPE ${name} counter`), name);
  }
  t.true(text.includes('process_cpu_user_seconds_total'));
  t.true(text.includes('nodejs_eventloop_lag_seconds'));
});

test.serial('a pull the client leaves midway is counted as 499 once the response is over', async (t) => {
  const client = createClient(registry.url);
  const layer = randomLayer(16 * 1024 * 1024);
  t.is((await client.pushBlob('metrics/left', layer)).status, 201);
  const series = 'signet_http_requests_total{route="blob.get",method="GET",status="499"}';
  const before = sample(await scrape(registry.url), series);
  await new Promise<void>((resolve, reject) => {
    const req = http.get(`${registry.url}/v2/metrics/left/blobs/${layer.digest}`, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
  });
  t.true(await until(async () => sample(await scrape(registry.url), series) === before + 1, 5000));
});

test.serial('range requests count the bytes actually sent', async (t) => {
  const client = createClient(registry.url);
  const layer = randomLayer(1000);
  t.is((await client.pushBlob('metrics/range', layer)).status, 201);
  const before = sample(await scrape(registry.url), 'signet_blob_bytes_sent_total');
  const res = await client.request(`/v2/metrics/range/blobs/${layer.digest}`, { headers: { Range: 'bytes=100-199' } });
  t.is(res.status, 206);
  t.is((await res.arrayBuffer()).byteLength, 100);
  t.is(sample(await scrape(registry.url), 'signet_blob_bytes_sent_total') - before, 100);
});

test.serial('the pull gate counts allowed and refused pulls in signed-only projects', async (t) => {
  const client = createClient(registry.url);
  const api = (path: string, method: string, body: unknown) =>
    fetch(`${registry.url}/api/v1/projects${path}`, {
      method,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  t.is((await api('', 'POST', { name: 'gated' })).status, 201);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('gated/app', image, 'v1')).status, 201);
  // A cosign signature manifest is served without a signature of its own: an allowed decision.
  const sig = cosignSignatureManifest(makeCosignKey(), image.manifest.digest, `${registry.host}/gated/app`);
  for (const blob of sig.blobs) await client.pushBlob('gated/app', blob);
  t.is((await client.pushManifest('gated/app', sig.tag, sig.manifest)).status, 201);
  t.is((await api('/gated', 'PATCH', { signedOnly: true })).status, 200);

  t.is((await client.getManifest('gated/app', 'v1')).status, 412);
  t.is((await client.getManifest('gated/app', sig.tag)).status, 200);
  const text = await scrape(registry.url);
  t.is(sample(text, 'signet_pull_gate_decisions_total{outcome="refused"}'), 1);
  t.is(sample(text, 'signet_pull_gate_decisions_total{outcome="allowed"}'), 1);
  t.is(sample(text, 'signet_http_requests_total{route="manifest.get",method="GET",status="412"}'), 1);
});

test('each registry has its own metrics; /metrics can be turned off or moved to the debug address', async (t) => {
  const off = await startTestRegistry({ env: { REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'false' } });
  const moved = await startTestRegistry({ env: { REGISTRY_HTTP_DEBUG_ADDR: '127.0.0.1:0' } });
  t.teardown(() => Promise.all([off.close(), moved.close()]));
  t.is((await fetch(`${off.url}/metrics`)).status, 404);
  t.is((await fetch(`${moved.url}/metrics`)).status, 404);
  // The registries' counters are their own: this one has seen only the two 404s above.
  const text = await moved.registry.deps.metrics.register.metrics();
  t.is(sample(text, 'signet_http_requests_total{route="none",method="GET",status="404"}'), 1);
  t.false(text.includes('route="upload.start"'));
});

test('the debug listener serves metrics at the configured path only', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  metrics.gcRuns.inc();
  const server = http.createServer(createDebugListener(metrics, '/metrics'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await fetch(`${base}/metrics`);
  t.is(res.status, 200);
  t.is(sample(await res.text(), 'signet_gc_runs_total'), 1);
  t.is((await fetch(`${base}/v2/`)).status, 404);
  t.is((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
});

test('request counts and durations: cumulative buckets, sum and count, nothing counted twice across scrapes', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  observeRequest(metrics, 'blob.get', 'GET', 200, 0.004);
  observeRequest(metrics, 'blob.get', 'GET', 200, 0.005); // a bucket holds values up to its bound
  observeRequest(metrics, 'blob.get', 'GET', 404, 0.02);
  observeRequest(metrics, 'blob.get', 'BREW', 200, 400); // beyond the last bound: +Inf only
  let text = await metrics.register.metrics();
  const bucket = (le: string, method = 'GET') =>
    sample(text, `signet_http_request_duration_seconds_bucket{le="${le}",route="blob.get",method="${method}"}`);
  t.is(bucket('0.005'), 2);
  t.is(bucket('0.01'), 2);
  t.is(bucket('0.025'), 3);
  t.is(bucket('300'), 3);
  t.is(bucket('+Inf'), 3);
  t.is(bucket('300', 'other'), 0);
  t.is(bucket('+Inf', 'other'), 1);
  t.is(sample(text, 'signet_http_request_duration_seconds_count{route="blob.get",method="GET"}'), 3);
  t.true(Math.abs(sample(text, 'signet_http_request_duration_seconds_sum{route="blob.get",method="GET"}') - 0.029) < 1e-9);
  t.is(sample(text, 'signet_http_requests_total{route="blob.get",method="GET",status="200"}'), 2);
  t.is(sample(text, 'signet_http_requests_total{route="blob.get",method="GET",status="404"}'), 1);
  t.is(sample(text, 'signet_http_requests_total{route="blob.get",method="other",status="200"}'), 1);

  observeRequest(metrics, 'blob.get', 'GET', 200, 0.001);
  text = await metrics.register.metrics();
  t.is(
    sample(text, 'signet_http_requests_total{route="blob.get",method="GET",status="200"}'),
    3,
    'a scrape adds only what came since the last',
  );
  t.is(bucket('0.005'), 3);
  t.is(sample(text, 'signet_http_request_duration_seconds_count{route="blob.get",method="GET"}'), 4);
  // The JSON form has the same samples.
  const json = await metrics.register.getMetricsAsJSON();
  const histogram = json.find((m) => m.name === 'signet_http_request_duration_seconds');
  t.is(String(histogram?.type), 'histogram'); // prom-client's typings say an enum; it answers the string
  t.is(histogram?.values.find((v) => v.labels.le === '+Inf' && v.labels.method === 'GET')?.value, 4);

  metrics.register.resetMetrics();
  text = await metrics.register.metrics();
  t.false(text.includes('route="blob.get"'), 'reset empties both');
});

/** A manifest GET sent with `host` as its Host header, as a client reaching the registry by that name would. */
function getThrough(host: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, registry.url);
    const req = http.request(url, { headers: { Host: host, Accept: 'application/vnd.oci.image.manifest.v1+json' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test.serial('a signature is checked once per trust set: pulls through any number of Host names do not check it again', async (t) => {
  const key = makeCosignKey();
  const api = (path: string, method: string, body: unknown) =>
    fetch(`${registry.url}/api/v1/projects${path}`, { method, body: typeof body === 'string' ? body : JSON.stringify(body) });
  t.is((await api('', 'POST', { name: 'verified' })).status, 201);
  t.is((await api('/verified/keys', 'POST', key.publicPem)).status, 201);
  const client = createClient(registry.url);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('verified/app', image, 'v1')).status, 201);
  const signature = cosignSign(key, image.manifest.digest, `${registry.host}/verified/app`);
  for (const blob of [signature.payload, signature.config]) t.is((await client.pushBlob('verified/app', blob)).status, 201);
  t.is((await client.pushManifest('verified/app', signature.tag, signature.manifest)).status, 201);
  t.is((await api('/verified', 'PATCH', { signedOnly: true })).status, 200);
  const checked = async () => sample(await scrape(registry.url), 'signet_pull_gate_signature_verifications_total{format="cosign"}');
  const before = await checked();

  t.is(await getThrough(registry.host, '/v2/verified/app/manifests/v1'), 200);
  t.is(await checked(), before + 1);
  // An anonymous client naming a new host each time: a new decision each, refused (the signature
  // names another registry), and the signature is not checked again.
  for (let i = 0; i < 20; i++) t.is(await getThrough(`alias-${i}.example.com`, '/v2/verified/app/manifests/v1'), 412);
  t.is(await checked(), before + 1);
  // A change of the project's keys is a new trust set: checked again.
  t.is((await api('/verified/keys', 'POST', makeCosignKey().publicPem)).status, 201);
  t.is(await getThrough(registry.host, '/v2/verified/app/manifests/v1'), 200);
  t.is(await checked(), before + 2);
});
