// Crash safety: the server is killed with SIGKILL in the middle of work and started again on the
// same data. Nothing partial or wrong is ever served, tags name only complete manifests,
// interrupted uploads resume or fail cleanly, and nothing acknowledged before the kill is lost.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, makeImage, type Image } from '../helpers/oci-layout.js';
import { startServerProcess } from '../helpers/server-process.js';
import { until } from '../helpers/wait.js';

async function dataDirEnv(t: { teardown: (fn: () => Promise<void>) => void }): Promise<Record<string, string>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return {
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
    REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
    REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
  };
}

/** Starts a request that streams `total` bytes slowly; resolves once `after` bytes went out. */
function slowUpload(url: string, method: string, total: number, after: number): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': String(total) } });
    req.on('error', () => undefined);
    let sent = 0;
    const piece = randomBytes(64 * 1024);
    const pump = (): void => {
      if (sent >= total) return;
      req.write(piece.subarray(0, Math.min(piece.length, total - sent)));
      sent += piece.length;
      if (sent >= after) resolve();
      setTimeout(pump, 5);
    };
    pump();
  });
}

interface GcProgressLine {
  phase: string;
  done: number;
  total: number;
}

/** Reads POST /api/v1/gc's NDJSON until a progress line satisfies `wanted`; undefined if none did. */
async function firstProgress(res: Response, wanted: (progress: GcProgressLine) => boolean): Promise<GcProgressLine | undefined> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return undefined;
      buffered += decoder.decode(value, { stream: true });
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const { progress } = JSON.parse(line) as { progress?: GcProgressLine };
        if (progress && wanted(progress)) return progress;
      }
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

test.serial('killed during a monolithic blob upload: nothing partial is served, the push works again', async (t) => {
  const env = await dataDirEnv(t);
  const first = await startServerProcess(env);
  t.teardown(() => first.kill());
  const blob = blobOf(randomBytes(4 * 1024 * 1024), 'application/octet-stream');
  await slowUpload(`${first.url}/v2/crash/mono/blobs/uploads/?digest=${blob.digest}`, 'POST', blob.size, 1024 * 1024);
  await first.kill('SIGKILL');

  const second = await startServerProcess(env);
  t.teardown(() => second.kill());
  const client = createClient(second.url);
  t.is((await client.request(`/v2/crash/mono/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);
  t.is((await client.pushBlob('crash/mono', blob)).status, 201);
  const got = Buffer.from(await (await client.request(`/v2/crash/mono/blobs/${blob.digest}`)).arrayBuffer());
  t.is(sha256(got), blob.digest);
});

test.serial('killed during a chunk of a chunked upload: the upload resumes from its last complete chunk', async (t) => {
  const env = await dataDirEnv(t);
  const first = await startServerProcess(env);
  t.teardown(() => first.kill());
  const data = randomBytes(3 * 1024 * 1024);
  const client1 = createClient(first.url);
  const start = await client1.request('/v2/crash/chunked/blobs/uploads/', { method: 'POST' });
  const location = start.headers.get('location')!;
  const one = await client1.request(location, {
    method: 'PATCH',
    body: new Uint8Array(data.subarray(0, 1024 * 1024)),
    headers: { 'Content-Range': `0-${1024 * 1024 - 1}` },
  });
  t.is(one.status, 202);
  await slowUpload(`${first.url}${location}`, 'PATCH', 2 * 1024 * 1024, 512 * 1024);
  await first.kill('SIGKILL');

  const second = await startServerProcess(env);
  t.teardown(() => second.kill());
  const client = createClient(second.url);
  const status = await client.request(location);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), `0-${1024 * 1024 - 1}`, 'the half-received chunk is not part of the upload');
  const rest = await client.request(location, {
    method: 'PATCH',
    body: new Uint8Array(data.subarray(1024 * 1024)),
    headers: { 'Content-Range': `${1024 * 1024}-${data.length - 1}` },
  });
  t.is(rest.status, 202);
  t.is((await client.request(`${location}?digest=${sha256(data)}`, { method: 'PUT' })).status, 201);
  const got = Buffer.from(await (await client.request(`/v2/crash/chunked/blobs/${sha256(data)}`)).arrayBuffer());
  t.true(got.equals(data));
});

test.serial('killed during the PUT that completes an upload: the session stays, and the retried PUT completes it', async (t) => {
  const env = await dataDirEnv(t);
  const first = await startServerProcess(env);
  t.teardown(() => first.kill());
  const data = randomBytes(5 * 1024 * 1024);
  const head = 3 * 1024 * 1024;
  const client1 = createClient(first.url);
  const location = (await client1.request('/v2/crash/finish/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
  const patched = await client1.request(location, {
    method: 'PATCH',
    body: new Uint8Array(data.subarray(0, head)),
    headers: { 'Content-Range': `0-${head - 1}` },
  });
  t.is(patched.status, 202);
  // The closing PUT carries the rest and is cut off by the kill halfway through.
  await slowUpload(`${first.url}${location}?digest=${sha256(data)}`, 'PUT', data.length - head, 512 * 1024);
  await first.kill('SIGKILL');

  const second = await startServerProcess(env);
  t.teardown(() => second.kill());
  const client = createClient(second.url);
  const status = await client.request(location);
  t.is(status.status, 204, 'the upload survived its cut-off PUT');
  t.is(status.headers.get('range'), `0-${head - 1}`, 'with what its recorded chunk holds');
  // What a client does after a failed PUT it may retry: the same PUT again, only the rest sent.
  const retried = await client.request(`${location}?digest=${sha256(data)}`, { method: 'PUT', body: new Uint8Array(data.subarray(head)) });
  t.is(retried.status, 201, await retried.clone().text());
  const got = Buffer.from(await (await client.request(`/v2/crash/finish/blobs/${sha256(data)}`)).arrayBuffer());
  t.true(got.equals(data));
  t.is((await client.request(location)).status, 404, 'the session ended with the link');
});

test.serial(
  'killed while manifests and tags are being pushed: every tag names a complete manifest, nothing acknowledged is lost',
  async (t) => {
    const env = await dataDirEnv(t);
    const first = await startServerProcess(env);
    t.teardown(() => first.kill());
    const client1 = createClient(first.url);
    const acknowledged = new Map<string, Image>();
    let stop = false;
    const pusher = (async () => {
      for (let i = 0; !stop; i++) {
        const image = makeImage({ layers: 1, layerBytes: 2048 });
        try {
          const res = await client1.pushImage('crash/tags', image, `t${i}`);
          if (res.status === 201) acknowledged.set(`t${i}`, image);
        } catch {
          return; // the server died under us
        }
      }
    })();
    // Killed once several pushes were acknowledged, with the next one under way.
    t.true(await until(() => acknowledged.size >= 5, 60_000), 'pushes are acknowledged before the kill');
    await first.kill('SIGKILL');
    stop = true;
    await pusher;
    t.true(acknowledged.size > 0, 'some pushes completed before the kill');

    const second = await startServerProcess(env);
    t.teardown(() => second.kill());
    const client = createClient(second.url);
    const tags = ((await (await client.request('/v2/crash/tags/tags/list')).json()) as { tags: string[] }).tags;
    for (const tag of acknowledged.keys()) t.true(tags.includes(tag), `acknowledged ${tag} survived`);
    for (const tag of tags) {
      const res = await client.getManifest('crash/tags', tag);
      t.is(res.status, 200, tag);
      const body = Buffer.from(await res.arrayBuffer());
      t.is(sha256(body), res.headers.get('docker-content-digest') ?? '');
      const manifest = JSON.parse(body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
      for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
        const blob = Buffer.from(await (await client.request(`/v2/crash/tags/blobs/${digest}`)).arrayBuffer());
        t.is(sha256(blob), digest, `${tag}: ${digest} complete and correct`);
      }
    }
  },
);

test.serial('killed during garbage collection: referenced data stays, a new run finishes the job', async (t) => {
  const env = { ...(await dataDirEnv(t)), REGISTRY_GC_GRACE: '0' };
  const first = await startServerProcess(env);
  t.teardown(() => first.kill());
  const client1 = createClient(first.url);
  const kept = makeImage({ layers: 2 });
  await client1.pushImage('crash/gc', kept, 'v1');
  const garbage = Array.from({ length: 150 }, () => blobOf(randomBytes(1024), 'application/octet-stream'));
  for (const blob of garbage) await client1.pushBlob('crash/gc', blob);
  // Killed once the run reports that it is removing blobs and has not removed them all.
  const run = await client1.request('/api/v1/gc', { method: 'POST', body: '{}' });
  const midway = await firstProgress(run, (p) => p.phase === 'blobs' && p.done < p.total);
  await first.kill('SIGKILL');
  t.truthy(midway, 'the collection was removing blobs when the server was killed');
  t.log(`killed at ${midway?.done} of ${midway?.total} blobs`);

  const second = await startServerProcess(env);
  t.teardown(() => second.kill());
  const client = createClient(second.url);
  for (const blob of [kept.config, ...kept.layers]) {
    const got = Buffer.from(await (await client.request(`/v2/crash/gc/blobs/${blob.digest}`)).arrayBuffer());
    t.is(sha256(got), blob.digest);
  }
  // Whatever the first run left half done (links without bytes are impossible; bytes without links are orphans) goes now.
  const res = await client.request('/api/v1/gc', { method: 'POST', body: '{}' });
  t.regex(await res.text(), /"report"/);
  for (const blob of garbage) t.is((await client.request(`/v2/crash/gc/blobs/${blob.digest}`, { method: 'HEAD' })).status, 404);
  t.is((await client.getManifest('crash/gc', 'v1')).status, 200);
});
