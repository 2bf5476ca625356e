// The S3 server killed (SIGKILL) and started again under a registry that is being pushed to and
// pulled from: s3rver in a process of its own. Meanwhile what needs the object store answers 503
// UNAVAILABLE with Retry-After, naming the blob storage, never 500, plain text or a reset; what
// the database alone answers (manifests, tags, blob HEADs) goes on; /readyz says what is missing;
// the outage is logged once when it starts and once when it ends. Nothing acknowledged is lost.
import { randomBytes } from 'node:crypto';
import { startFaultLoad } from '../helpers/fault-load.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { startS3rverProcess, type S3rverProcess } from '../helpers/s3rver-process.js';
import { sleep, until } from '../helpers/wait.js';
import test from 'ava';

let s3: S3rverProcess;
let registry: TestRegistry;
let logs: CapturedLog;
let image: Image;
let client: ReturnType<typeof createClient>;

test.before(async () => {
  s3 = await startS3rverProcess();
  logs = captureLog();
  registry = await startTestRegistry({ log: logs.log, env: s3.registryEnv() });
  client = createClient(registry.url);
  image = makeImage({ layers: 1 });
  const pushed = await client.pushImage('s3/app', image, 'v1');
  if (pushed.status !== 201) throw new Error(`push failed: ${pushed.status}`);
});

test.after.always(async () => {
  await registry?.close();
  await s3?.close();
});

async function readiness(): Promise<{ status: number; detail?: Record<string, string> }> {
  const res = await client.request('/readyz');
  const body = (await res.json()) as OciErrorBody;
  return { status: res.status, ...(res.status === 503 ? { detail: body.errors[0]!.detail as Record<string, string> } : {}) };
}

test.serial('S3 killed and restarted under load: 503 with Retry-After meanwhile, database reads go on, nothing lost', async (t) => {
  t.timeout(120_000);
  const layer = image.layers[0]!;
  const load = startFaultLoad([registry.url], { repository: 's3/app', reference: 'v1', blob: layer.digest });
  await sleep(500);
  await s3.kill();

  t.true(await until(async () => (await readiness()).status === 503, 10_000));
  t.deepEqual((await readiness()).detail, { database: 'ok', storage: 'connection refused' });

  // The blob's bytes are out of reach: a 503 that says why, before any byte of the body, for a
  // ranged read served through the registry and for a whole-blob GET that would be sent to S3.
  const redirected = await client.request(`/v2/s3/app/blobs/${layer.digest}`, { redirect: 'manual' });
  t.is(redirected.status, 503);
  t.is(((await redirected.json()) as OciErrorBody).errors[0]!.code, 'UNAVAILABLE');
  const get = await client.request(`/v2/s3/app/blobs/${layer.digest}`, { headers: { Range: 'bytes=0-' } });
  t.is(get.status, 503);
  t.is(get.headers.get('retry-after'), '5');
  const error = ((await get.json()) as OciErrorBody).errors[0]!;
  t.is(error.code, 'UNAVAILABLE');
  t.is(error.message, "the registry's blob storage is unavailable (connection refused); try again later");
  t.deepEqual(error.detail, { dependency: 'storage', reason: 'connection refused' });
  // What the database answers alone goes on.
  const head = await client.request(`/v2/s3/app/blobs/${layer.digest}`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers.get('content-length'), String(layer.size));
  t.is((await client.getManifest('s3/app', 'v1')).status, 200);
  t.is((await client.request('/v2/s3/app/tags/list')).status, 200);
  // An upload's body is refused with the answer, not a reset, and the upload stays where it was.
  const started = await client.request('/v2/s3/app/blobs/uploads/', { method: 'POST' });
  t.is(started.status, 202);
  const location = started.headers.get('location')!;
  const patch = await client.request(location, { method: 'PATCH', body: new Uint8Array(randomBytes(3 * 1024 * 1024)) });
  t.is(patch.status, 503);
  t.is(((await patch.json()) as OciErrorBody).errors[0]!.code, 'UNAVAILABLE');
  t.is((await client.request(location)).headers.get('range'), '0-0');

  await s3.start();
  t.true(await until(async () => (await readiness()).status === 200, 20_000));
  t.is((await client.request(`/v2/s3/app/blobs/${layer.digest}`, { redirect: 'manual' })).status, 307);
  await sleep(500);
  await load.stop();

  const failures = load.answers.filter((a) => a.status >= 400 || a.status === 0);
  t.deepEqual(
    failures.filter((a) => a.status !== 503 || a.code !== 'UNAVAILABLE' || a.retryAfter !== '5'),
    [],
    'only 503 UNAVAILABLE with Retry-After',
  );
  t.true(
    failures.some((a) => a.what === 'blob get'),
    'the load met the outage',
  );
  t.deepEqual(
    load.answers.filter((a) => ['manifest pull', 'tags list', 'blob head'].includes(a.what) && (a.status >= 300 || a.status === 0)),
    [],
    'what needs no object store never failed',
  );
  // Nothing acknowledged is lost.
  t.true(load.acknowledgedBlobs.length > 0);
  for (const { repository, digest } of load.acknowledgedBlobs) {
    t.is((await client.request(`/v2/${repository}/blobs/${digest}`, { headers: { Range: 'bytes=0-' } })).status, 206, digest);
  }
  for (const { repository, tag, digest } of load.acknowledged) {
    t.is((await client.getManifest(repository, tag)).headers.get('docker-content-digest'), digest);
  }
  // And the upload refused during the outage goes on.
  const data = randomBytes(200_000);
  t.is((await client.request(location, { method: 'PATCH', body: new Uint8Array(data) })).status, 202);
});

test.serial('the outage is logged when it starts and when it ends, without stack traces', async (t) => {
  // The end is logged once the store has answered for a second (server/availability.ts).
  await until(async () => logs.withMessage('storage available again').length > 0, 5000);
  const down = logs.withMessage('blob storage unavailable: requests that need it answer 503 until it is back');
  t.is(down.length, 1);
  // Refused, or lost when a request was in flight as the server died; the bucket named.
  t.like(down[0], { dependency: 'storage', driver: 's3', bucket: s3.bucket });
  t.regex(String(down[0]?.reason), /^connection (refused|lost)$/);
  t.is(down[0]?.err, undefined);
  t.is(logs.withMessage('storage available again').length, 1);
  t.deepEqual(
    logs.lines.filter((line) => line.msg === 'request failed' || line.msg === 'response stream failed'),
    [],
  );
});
