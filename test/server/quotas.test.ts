// Per-project storage quotas over HTTP: set by registry admins only, shown with the usage, and
// enforced on upload completion, cross-repository mounts and manifest pushes (403 DENIED with the
// figures, nothing linked), also against uploads finishing at once; what the project already holds
// adds nothing. An upload never streams in more than the quota has left.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { basic, createProject, writeHtpasswd } from '../helpers/auth.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { blobOf, OCI_LAYER, makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { randomBytes } from 'node:crypto';

let dir: string;
let registry: TestRegistry;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-quota-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw', dev: 'dev-pw' });
  registry = await startTestRegistry({
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  await createProject(registry.url, ['root', 'root-pw'], 'q', { public: false, members: { dev: 'admin' } });
  await createProject(registry.url, ['root', 'root-pw'], 'other', { public: false, members: { dev: 'admin' } });
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const blob = (bytes: number) => blobOf(randomBytes(bytes), OCI_LAYER);

function setQuota(user: [string, string], quotaBytes: number | null | string): Promise<Response> {
  return fetch(`${registry.url}/api/v1/projects/q`, {
    method: 'PATCH',
    headers: { Authorization: basic(...user), 'Content-Type': 'application/json' },
    body: JSON.stringify({ quotaBytes }),
  });
}

async function project(): Promise<{ quotaBytes: number | null; usedBytes: number }> {
  const res = await fetch(`${registry.url}/api/v1/projects/q`, { headers: { Authorization: basic('dev', 'dev-pw') } });
  return (await res.json()) as { quotaBytes: number | null; usedBytes: number };
}

test.serial('only registry admins set quotas; GET shows quota and usage', async (t) => {
  const refused = await setQuota(['dev', 'dev-pw'], 1000);
  t.is(refused.status, 403);
  t.is(((await refused.json()) as OciErrorBody).errors[0]?.code, 'DENIED');
  t.is((await setQuota(['root', 'root-pw'], -1)).status, 400);
  t.is((await setQuota(['root', 'root-pw'], 1.5)).status, 400);
  t.is((await setQuota(['root', 'root-pw'], 'lots')).status, 400);
  const set = await setQuota(['root', 'root-pw'], 1000);
  t.is(set.status, 200);
  t.is(((await set.json()) as { quotaBytes: number }).quotaBytes, 1000);
  t.deepEqual(await project().then((p) => [p.quotaBytes, p.usedBytes]), [1000, 0]);
});

test.serial('uploads past the quota are refused with the figures; nothing is linked', async (t) => {
  const client = createClient(registry.url, { Authorization: basic('dev', 'dev-pw') });
  const first = blob(600);
  t.is((await client.pushBlob('q/app', first)).status, 201);
  t.is((await project()).usedBytes, 600);

  // Monolithic and chunked uploads alike.
  const second = blob(500);
  for (const push of [() => client.pushBlob('q/app', second), () => client.pushChunked('q/team/app', second, 200)]) {
    const res = await push();
    t.is(res.status, 403);
    const error = ((await res.json()) as OciErrorBody).errors[0]!;
    t.is(error.code, 'DENIED');
    t.regex(error.message, /quota exceeded: project q uses 600 of 1000 bytes; this blob needs 500 more/);
    t.deepEqual(error.detail, { project: 'q', usedBytes: 600, quotaBytes: 1000, blobBytes: 500 });
  }
  t.is((await client.request(`/v2/q/app/blobs/${second.digest}`, { method: 'HEAD' })).status, 404);
  t.is((await client.request(`/v2/q/team/app/blobs/${second.digest}`, { method: 'HEAD' })).status, 404);
  t.is((await project()).usedBytes, 600);

  // What fits still goes in; a blob the project already holds adds nothing, in any repository.
  t.is((await client.pushBlob('q/app', blob(400))).status, 201);
  t.is((await project()).usedBytes, 1000);
  t.is((await client.pushBlob('q/app', first)).status, 201);
  t.is((await client.pushBlob('q/second', first)).status, 201);
  const mounted = await client.request(`/v2/q/third/blobs/uploads/?mount=${first.digest}&from=q/app`, { method: 'POST' });
  t.is(mounted.status, 201);
  t.is((await project()).usedBytes, 1000);
});

test.serial('a mount from another project past the quota is refused, and manifests count', async (t) => {
  const client = createClient(registry.url, { Authorization: basic('dev', 'dev-pw') });
  const elsewhere = blob(300);
  t.is((await client.pushBlob('other/app', elsewhere)).status, 201);
  const res = await client.request(`/v2/q/app/blobs/uploads/?mount=${elsewhere.digest}&from=other/app`, { method: 'POST' });
  t.is(res.status, 403);
  const error = ((await res.json()) as OciErrorBody).errors[0]!;
  t.is(error.code, 'DENIED');
  t.regex(error.message, /uses 1000 of 1000 bytes; this blob needs 300 more/);
  t.is((await client.request(`/v2/q/app/blobs/${elsewhere.digest}`, { method: 'HEAD' })).status, 404);

  // Raised quota: the image goes in, and its manifest counts in the usage.
  t.is((await setQuota(['root', 'root-pw'], 100_000)).status, 200);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('q/app', image, 'v1')).status, 201);
  t.is((await project()).usedBytes, 1000 + image.config.size + image.layers[0]!.size + image.manifest.size);

  // No quota: nothing is refused.
  t.is((await setQuota(['root', 'root-pw'], null)).status, 200);
  t.is((await project()).quotaBytes, null);
  t.is((await client.pushBlob('q/app', blob(200_000))).status, 201);
});

/**
 * Twenty uploads of 100 KB each, their bodies all in, are finished at once with room for one in
 * project q of `on`: exactly one is linked, whichever.
 */
async function raceToTheQuota(t: ExecutionContext, on: TestRegistry): Promise<void> {
  const client = createClient(on.url, { Authorization: basic('dev', 'dev-pw') });
  const quota = (quotaBytes: number | null) =>
    fetch(`${on.url}/api/v1/projects/q`, {
      method: 'PATCH',
      headers: { Authorization: basic('root', 'root-pw'), 'Content-Type': 'application/json' },
      body: JSON.stringify({ quotaBytes }),
    });
  const used = async () =>
    (
      (await (await fetch(`${on.url}/api/v1/projects/q`, { headers: { Authorization: basic('dev', 'dev-pw') } })).json()) as {
        usedBytes: number;
      }
    ).usedBytes;
  const blobs = Array.from({ length: 20 }, () => blob(100_000));
  // Every body is in before any session is finished: the PUTs carry none and take no upload slot.
  const sessions = await Promise.all(
    blobs.map(async (b) => {
      const started = await client.request('/v2/q/race/blobs/uploads/', { method: 'POST' });
      const patched = await client.request(started.headers.get('location')!, { method: 'PATCH', body: new Uint8Array(b.data) });
      t.is(patched.status, 202);
      return `${patched.headers.get('location')!}?digest=${b.digest}`;
    }),
  );
  const before = await used();
  t.is((await quota(before + 150_000)).status, 200);
  const statuses = await Promise.all(sessions.map(async (location) => (await client.request(location, { method: 'PUT' })).status));
  t.deepEqual(
    statuses.filter((status) => status === 201),
    [201],
    `statuses ${statuses.join(' ')}`,
  );
  t.is(statuses.filter((status) => status === 403).length, 19);
  t.is(await used(), before + 100_000);
  t.is((await quota(null)).status, 200);
}

test.serial('uploads finishing at once are judged one after the other: together they never pass the quota', async (t) => {
  await raceToTheQuota(t, registry);
});

test.serial('on PostgreSQL too, where the usage is read on several connections at once', async (t) => {
  const onPostgres = await startTestRegistry({
    database: 'postgres',
    env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'), REGISTRY_AUTH_ADMINS: 'root' },
  });
  t.teardown(() => onPostgres.close());
  await createProject(onPostgres.url, ['root', 'root-pw'], 'q', { public: false, members: { dev: 'admin' } });
  for (let round = 0; round < 3; round++) await raceToTheQuota(t, onPostgres);
});

test.serial(
  'a manifest past the quota is refused with the figures; one the repository holds goes in under any tag, a copy elsewhere counts',
  async (t) => {
    const client = createClient(registry.url, { Authorization: basic('dev', 'dev-pw') });
    t.is((await setQuota(['root', 'root-pw'], null)).status, 200);
    const held = makeImage({ layers: 1 });
    t.is((await client.pushImage('q/manifests', held, 'v1')).status, 201);
    const next = makeImage({ layers: 1 });
    for (const b of [next.config, ...next.layers]) t.is((await client.pushBlob('q/manifests', b)).status, 201);
    const { usedBytes } = await project();
    t.is((await setQuota(['root', 'root-pw'], usedBytes)).status, 200);

    const refused = await client.pushManifest('q/manifests', 'v2', next.manifest);
    t.is(refused.status, 403);
    const error = ((await refused.json()) as OciErrorBody).errors[0]!;
    t.is(error.code, 'DENIED');
    t.regex(error.message, new RegExp(`uses ${usedBytes} of ${usedBytes} bytes; this manifest needs ${next.manifest.size} more`));
    t.is((await client.request(`/v2/q/manifests/manifests/v2`, { method: 'HEAD' })).status, 404);
    // A manifest the repository holds adds nothing, under any tag; another repository stores a copy of
    // its own, which counts (the same 4 MiB manifest in 40 repositories was counted once).
    t.is((await client.pushManifest('q/manifests', 'again', held.manifest)).status, 201);
    t.is((await project()).usedBytes, usedBytes);
    for (const b of [held.config, ...held.layers]) {
      t.is((await client.request(`/v2/q/copy/blobs/uploads/?mount=${b.digest}&from=q/manifests`, { method: 'POST' })).status, 201);
    }
    const copy = await client.pushManifest('q/copy', 'v1', held.manifest);
    t.is(copy.status, 403);
    t.regex(((await copy.json()) as OciErrorBody).errors[0]!.message, new RegExp(`this manifest needs ${held.manifest.size} more`));

    t.is((await setQuota(['root', 'root-pw'], usedBytes + next.manifest.size)).status, 200);
    t.is((await client.pushManifest('q/manifests', 'v2', next.manifest)).status, 201);
    t.is((await setQuota(['root', 'root-pw'], null)).status, 200);
  },
);

/** Bytes in every file under the registry's storage root. */
async function storedBytes(): Promise<number> {
  let total = 0;
  for (const entry of await readdir(path.join(registry.dataDir, 'storage'), { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

/**
 * A request whose body streams without a length (as docker and containers/image send a layer), 64
 * KiB at a time for as long as the server reads, at most `limit` bytes: the answer and how much
 * was sent before it came.
 */
function streamUntilAnswered(
  location: string,
  limit: number,
  method = 'PATCH',
): Promise<{ status: number; error: OciErrorBody['errors'][number] | undefined; sent: number }> {
  return new Promise((resolve, reject) => {
    const piece = randomBytes(64 * 1024);
    let sent = 0;
    const req = http.request(new URL(location, registry.url), {
      method,
      headers: { Authorization: basic('dev', 'dev-pw'), 'Content-Type': 'application/octet-stream' },
    });
    let answered = false;
    const pump = (): void => {
      while (!answered && sent < limit) {
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      if (!answered) req.end();
    };
    req.on('response', (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => (body += text));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, error: body ? (JSON.parse(body) as OciErrorBody).errors[0] : undefined, sent }),
      );
    });
    // Once the server has answered and closed, what the client still writes may fail: not the test's concern.
    req.on('error', (err) => (answered ? undefined : reject(err)));
    pump();
  });
}

/** A request announcing `length` bytes of body and sending none: the status, answered before the body. */
function announce(location: string, length: number, method = 'PATCH'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(location, registry.url), {
      method,
      headers: { Authorization: basic('dev', 'dev-pw'), 'Content-Length': String(length) },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

test.serial('an upload streams in no more than could be linked: a longer body is cut, a longer length refused unread', async (t) => {
  const client = createClient(registry.url, { Authorization: basic('dev', 'dev-pw') });
  const { usedBytes } = await project();
  const MiB = 1024 * 1024;
  const quota = usedBytes + MiB;
  t.is((await setQuota(['root', 'root-pw'], quota)).status, 200);
  t.teardown(async () => void (await setQuota(['root', 'root-pw'], null)));
  const started = await client.request('/v2/q/stream/blobs/uploads/', { method: 'POST' });
  t.is(started.status, 202);
  const location = started.headers.get('location')!;
  const before = await storedBytes();

  // A session's chunks, whose blob is not known yet: cut once past the whole quota (no larger blob
  // is ever linked), long before the 256 MiB offered end, and nothing of the chunk kept.
  const cut = await streamUntilAnswered(location, 256 * MiB);
  t.is(cut.status, 403);
  t.is(cut.error?.code, 'DENIED');
  t.regex(
    cut.error?.message ?? '',
    new RegExp(`quota exceeded: project q has a quota of ${quota} bytes; this upload has more than ${quota} bytes`),
  );
  t.true(cut.sent < 64 * MiB, `the client sent ${cut.sent} bytes before the answer`);
  t.is(await storedBytes(), before, 'nothing of the refused chunk is stored');
  t.is(await announce(location, quota + 1), 403, 'a longer Content-Length is refused before the body is read');

  // A blob named in advance (monolithic POST ?digest=): no more than what is left of the quota.
  const tooBig = blob(MiB + 1);
  const monolithic = await streamUntilAnswered(`/v2/q/stream/blobs/uploads/?digest=${tooBig.digest}`, 256 * MiB, 'POST');
  t.is(monolithic.status, 403);
  t.regex(monolithic.error?.message ?? '', new RegExp(`uses ${usedBytes} of ${quota} bytes; this blob needs at least ${MiB + 1} more`));
  t.true(monolithic.sent < 64 * MiB);
  t.is(await announce(`/v2/q/stream/blobs/uploads/?digest=${tooBig.digest}`, MiB + 1, 'POST'), 403);

  // The session is where it was: what fits goes in and is linked.
  const status = await client.request(location);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), '0-0');
  const fits = blob(MiB);
  const patched = await client.request(location, { method: 'PATCH', body: new Uint8Array(fits.data) });
  t.is(patched.status, 202);
  t.is((await client.request(`${patched.headers.get('location')!}?digest=${fits.digest}`, { method: 'PUT' })).status, 201);
  t.is((await project()).usedBytes, quota);

  // The project is at its quota. A blob it holds adds nothing: pushed again as docker, podman and
  // skopeo push a layer they know no repository to mount from (POST, PATCH, PUT), it goes in.
  t.is((await client.pushChunked('q/other', fits, 256 * 1024)).status, 201);
  t.is((await client.pushBlob('q/stream2', fits)).status, 201);
  t.is((await project()).usedBytes, quota);
  // Named in advance, it may bring its own size and no more: a longer body could never match it.
  const longer = await streamUntilAnswered(`/v2/q/stream3/blobs/uploads/?digest=${fits.digest}`, 256 * MiB, 'POST');
  t.is(longer.status, 400);
  t.is(longer.error?.code, 'SIZE_INVALID');
  t.true(longer.sent < 64 * MiB, `the client sent ${longer.sent} bytes before the answer`);
  t.is(await announce(`/v2/q/stream3/blobs/uploads/?digest=${fits.digest}`, MiB + 1, 'POST'), 400);
  t.is(await storedBytes(), before + MiB, 'only the linked MiB is stored');
});
