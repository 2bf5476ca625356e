// Garbage collection over the real server: what is referenced stays readable, what is not goes,
// pushes racing the collection never leave a manifest pointing at missing bytes.
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { access, mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import type { GcReport } from '../../storage/gc.js';
import { createClient, errorCode } from '../helpers/oci-client.js';
import { blobOf, makeImage, makeIndex, sha256, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { openRaw, requestHead } from '../helpers/raw-http.js';
import { sleep, until } from '../helpers/wait.js';

const run = promisify(execFile);
let registry: TestRegistry;
let client: ReturnType<typeof createClient>;

test.before(async () => {
  registry = await startTestRegistry({ env: { REGISTRY_GC_GRACE: '0', REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '3600' } });
  client = createClient(registry.url);
});
test.after.always(() => registry?.close());

async function gc(body: Record<string, unknown> = {}): Promise<GcReport> {
  const res = await client.request('/api/v1/gc', { method: 'POST', body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`gc: ${res.status} ${await res.text()}`);
  const lines = (await res.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { report?: GcReport; error?: string });
  const last = lines[lines.length - 1]!;
  if (last.error) throw new Error(last.error);
  return last.report!;
}

async function blobStatus(repo: string, digest: string): Promise<number> {
  return (await client.request(`/v2/${repo}/blobs/${digest}`, { method: 'HEAD' })).status;
}

async function readable(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }, repo: string, image: Image): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const res = await client.request(`/v2/${repo}/blobs/${blob.digest}`);
    t.deepEqual(Buffer.from(await res.arrayBuffer()), blob.data, `${blob.digest} readable`);
  }
}

// Collection looks at the whole registry: these tests run one after another.
test.serial('dry run reports without removing; a real run removes only what nothing references', async (t) => {
  const kept = makeImage({ layers: 2 });
  const dropped = makeImage({ layers: 2 });
  // The dropped image shares one layer with the kept one.
  dropped.layers[0] = kept.layers[0]!;
  await client.pushImage('gc/app', kept, 'v1');
  const droppedManifest = JSON.parse(dropped.manifest.data.toString()) as { layers: { digest: string; size: number; mediaType: string }[] };
  droppedManifest.layers[0] = { mediaType: kept.layers[0]!.mediaType, digest: kept.layers[0]!.digest, size: kept.layers[0]!.size };
  const droppedBlob = blobOf(Buffer.from(JSON.stringify(droppedManifest)), dropped.manifest.mediaType);
  for (const b of [dropped.config, dropped.layers[1]!]) await client.pushBlob('gc/app', b);
  t.is((await client.pushManifest('gc/app', 'v2', droppedBlob)).status, 201);
  t.is((await client.request(`/v2/gc/app/manifests/${droppedBlob.digest}`, { method: 'DELETE' })).status, 202);

  const preview = await gc({ dryRun: true });
  t.true(preview.dryRun);
  t.true(preview.blobsRemoved >= 2);
  t.true(preview.bytesRemoved >= dropped.config.size + dropped.layers[1]!.size);
  t.is(await blobStatus('gc/app', dropped.layers[1]!.digest), 200, 'a dry run removes nothing');

  const report = await gc();
  t.false(report.dryRun);
  t.true(report.blobsRemoved >= 2);
  t.is(await blobStatus('gc/app', dropped.layers[1]!.digest), 404);
  t.is(await blobStatus('gc/app', dropped.config.digest), 404);
  await readable(t, 'gc/app', kept);
  const manifest = await client.getManifest('gc/app', 'v1');
  t.is(manifest.status, 200);
  // The bytes are gone from storage too.
  const hex = dropped.layers[1]!.digest.slice(7);
  await t.throwsAsync(access(path.join(registry.dataDir, 'storage', 'blobs', 'sha256', hex.slice(0, 2), hex)));
});

test.serial('the grace window keeps fresh blobs pushed ahead of their manifest', async (t) => {
  const image = makeImage({ layers: 1 });
  for (const b of [image.config, ...image.layers]) await client.pushBlob('gc/grace', b);
  const report = await gc({ graceSeconds: 3600 });
  t.is(report.blobsRemoved, 0);
  t.is((await client.pushManifest('gc/grace', 'v1', image.manifest)).status, 201);
  await readable(t, 'gc/grace', image);
});

test.serial('delete-untagged removes untagged manifests and their signatures, keeps what tagged indexes list', async (t) => {
  const a = makeImage({ layers: 1 });
  const b = makeImage({ layers: 1, architecture: 'arm64' });
  await client.pushImage('gc/multi', a);
  await client.pushImage('gc/multi', b);
  const index = makeIndex([a, b]);
  await client.pushManifest('gc/multi', 'latest', index);
  const loose = makeImage({ layers: 1 });
  await client.pushImage('gc/loose', loose); // by digest, never tagged

  const report = await gc({ deleteUntagged: true });
  t.true(report.manifestsRemoved >= 1);
  t.is((await client.getManifest('gc/loose', loose.manifest.digest)).status, 404);
  t.is(await blobStatus('gc/loose', loose.layers[0]!.digest), 404);
  for (const image of [a, b]) {
    t.is((await client.getManifest('gc/multi', image.manifest.digest)).status, 200);
    await readable(t, 'gc/multi', image);
  }
  // Without the index tag, its platform manifests go in the same run.
  await client.request('/v2/gc/multi/manifests/latest', { method: 'DELETE' });
  await gc({ deleteUntagged: true });
  t.is((await client.getManifest('gc/multi', a.manifest.digest)).status, 404);
  t.is(await blobStatus('gc/multi', a.layers[0]!.digest), 404);
});

test.serial(
  "a deleted image takes cosign's .sig, .att and .sbom tags in its repository with it; gc collects what they named",
  async (t) => {
    const attachTag = (image: Image, suffix: string) => `${image.manifest.digest.replace(':', '-')}.${suffix}`;
    const [gone, kept] = [makeImage({ layers: 1 }), makeImage({ layers: 1 })];
    await client.pushImage('gc/signed', gone, 'v1');
    await client.pushImage('gc/signed', kept, 'v2');
    // Stand-ins for what cosign pushes (any manifest will do: the tag's name is what ties it).
    const attached = new Map<string, Image>();
    for (const [repository, image, suffix] of [
      ['gc/signed', gone, 'sig'],
      ['gc/signed', gone, 'att'],
      ['gc/signed', gone, 'sbom'],
      ['gc/signed', kept, 'sig'],
      // COSIGN_REPOSITORY=<registry>/gc/sigs: the signatures of both live in another repository.
      ['gc/sigs', gone, 'sig'],
      ['gc/sigs', kept, 'sig'],
    ] as const) {
      const artifact = makeImage({ layers: 1 });
      t.is((await client.pushImage(repository, artifact, attachTag(image, suffix))).status, 201);
      attached.set(`${repository}:${attachTag(image, suffix)}`, artifact);
    }
    const tagsOf = async (repository: string) =>
      ((await (await client.request(`/v2/${repository}/tags/list`)).json()) as { tags: string[] }).tags.sort();

    t.is((await client.request(`/v2/gc/signed/manifests/${gone.manifest.digest}`, { method: 'DELETE' })).status, 202);
    t.deepEqual(await tagsOf('gc/signed'), [attachTag(kept, 'sig'), 'v2'].sort());
    t.deepEqual(await tagsOf('gc/sigs'), [attachTag(gone, 'sig'), attachTag(kept, 'sig')].sort(), 'another repository keeps its tags');
    await gc({ deleteUntagged: true });
    for (const suffix of ['sig', 'att', 'sbom']) {
      const artifact = attached.get(`gc/signed:${attachTag(gone, suffix)}`)!;
      t.is((await client.getManifest('gc/signed', artifact.manifest.digest)).status, 404, `the .${suffix} manifest went`);
      t.is(await blobStatus('gc/signed', artifact.layers[0]!.digest), 404);
    }
    await readable(t, 'gc/signed', attached.get(`gc/signed:${attachTag(kept, 'sig')}`)!);
    await readable(t, 'gc/signed', kept);
    for (const image of [gone, kept]) await readable(t, 'gc/sigs', attached.get(`gc/sigs:${attachTag(image, 'sig')}`)!);
  },
);

test.serial('stale upload sessions are removed; fresh ones stay', async (t) => {
  const stale = await client.request('/v2/gc/uploads/blobs/uploads/', { method: 'POST' });
  const staleLocation = stale.headers.get('location')!;
  await client.request(staleLocation, { method: 'PATCH', body: 'partial' });
  await registry.registry.db.query(`UPDATE uploads SET updated_at = now() - interval '2 hours' WHERE id = $1`, [
    stale.headers.get('docker-upload-uuid'),
  ]);
  const fresh = await client.request('/v2/gc/uploads/blobs/uploads/', { method: 'POST' });
  const report = await gc();
  t.true(report.uploadsRemoved >= 1);
  t.is((await client.request(staleLocation)).status, 404);
  t.is((await client.request(fresh.headers.get('location')!)).status, 204);
});

test.serial('upload objects whose session is gone (a crash mid-commit) are removed once old; fresh ones stay', async (t) => {
  const uploads = path.join(registry.dataDir, 'storage', 'uploads');
  const chunkName = `${'0'.repeat(16)}-abcdef012345`;
  // Orphans in this version's flat layout (uploads/<id>.<chunk>) and in the earlier one, where
  // each upload had a directory (uploads/<id>/<chunk>).
  const old = path.join(uploads, `${randomUUID()}.${chunkName}`);
  const oldInDirectory = path.join(uploads, randomUUID(), chunkName);
  const recent = path.join(uploads, `${randomUUID()}.${chunkName}`);
  for (const file of [old, oldInDirectory, recent]) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, randomBytes(50));
  }
  const past = new Date(Date.now() - 2 * 3600_000);
  for (const file of [old, oldInDirectory]) await utimes(file, past, past);
  // A live session's chunk, however old, belongs to its session until the session goes stale.
  const live = await client.request('/v2/gc/uploads/blobs/uploads/', { method: 'POST' });
  await client.request(live.headers.get('location')!, { method: 'PATCH', body: 'kept' });
  const liveChunks = async (): Promise<string[]> =>
    (await readdir(uploads)).filter((name) => name.startsWith(`${live.headers.get('docker-upload-uuid')!}.`));
  for (const name of await liveChunks()) await utimes(path.join(uploads, name), past, past);

  const report = await gc();
  t.true(report.uploadsRemoved >= 2);
  await t.throwsAsync(access(old), undefined, 'the orphan chunk is gone');
  await t.throwsAsync(access(oldInDirectory), undefined, 'the orphan chunk of the earlier layout is gone');
  await access(recent);
  t.is((await liveChunks()).length, 1, "the live session's chunk stays");
  t.is((await client.request(live.headers.get('location')!)).status, 204);
});

test.serial('blob files no database row knows (a crash between writing and linking) are removed', async (t) => {
  const data = randomBytes(100);
  const hex = sha256(data).slice(7);
  const dir = path.join(registry.dataDir, 'storage', 'blobs', 'sha256', hex.slice(0, 2));
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, hex);
  await writeFile(file, data);
  const past = new Date(Date.now() - 60_000);
  await utimes(file, past, past);
  const report = await gc();
  t.true(report.orphanFilesRemoved >= 1);
  await t.throwsAsync(access(file));
});

test.serial('temporary files of writes a crash cut off, and emptied upload directories, are removed once old', async (t) => {
  const storage = path.join(registry.dataDir, 'storage');
  const cutOff = path.join(storage, '_tmp', randomUUID());
  const emptied = path.join(storage, 'uploads', randomUUID());
  await mkdir(path.dirname(cutOff), { recursive: true });
  await writeFile(cutOff, randomBytes(300));
  await mkdir(emptied, { recursive: true });
  const past = new Date(Date.now() - 2 * 3600_000);
  await utimes(cutOff, past, past);
  await utimes(emptied, past, past);
  const report = await gc();
  await t.throwsAsync(access(cutOff), undefined, 'the temporary file is gone');
  await t.throwsAsync(access(emptied), undefined, 'the empty directory is gone');
  t.true(report.orphanFilesRemoved >= 1);
  t.true(report.bytesRemoved >= 300);
});

test.serial(
  'crash debris goes once older than any live request could be; live uploads, recorded chunks and young objects stay',
  async (t) => {
    // 30 minutes: past the debris age (idle timeout + 15 min), short of this registry's 1 h upload age.
    const past = new Date(Date.now() - 30 * 60_000);
    const storage = path.join(registry.dataDir, 'storage');
    const uploads = path.join(storage, 'uploads');
    const chunkName = (offset: number): string => `${String(offset).padStart(16, '0')}-abcdef012345`;
    const aged = async (file: string, size = 64): Promise<string> => {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, randomBytes(size));
      await utimes(file, past, past);
      return file;
    };
    const cutOff = await aged(path.join(storage, '_tmp', randomUUID()));
    const sessionless = await aged(path.join(uploads, `${randomUUID()}.${chunkName(0)}`));
    const young = path.join(uploads, `${randomUUID()}.${chunkName(0)}`);
    await writeFile(young, randomBytes(64));

    // A live session: its recorded chunk stays however old; an object it never recorded (the body of
    // a PUT a crash cut off) goes.
    const live = await client.request('/v2/gc/debris/blobs/uploads/', { method: 'POST' });
    const liveId = live.headers.get('docker-upload-uuid')!;
    t.is((await client.request(live.headers.get('location')!, { method: 'PATCH', body: 'recorded' })).status, 202);
    const recorded = (await readdir(uploads)).filter((name) => name.startsWith(`${liveId}.`)).map((name) => path.join(uploads, name));
    t.is(recorded.length, 1);
    await utimes(recorded[0]!, past, past);
    const unrecorded = await aged(path.join(uploads, `${liveId}.${chunkName(8)}`));

    // An upload streaming right now, its temporary file made to look old: this process is writing it.
    const slow = await client.request('/v2/gc/debris/blobs/uploads/', { method: 'POST' });
    const tmpBefore = new Set(await readdir(path.join(storage, '_tmp')));
    const streaming = await openRaw(Number(new URL(registry.url).port), { timeoutMs: 60_000 });
    const data = randomBytes(2000);
    streaming.socket.write(
      requestHead('PATCH', slow.headers.get('location')!, { Host: 'x', 'Content-Length': String(data.length), Connection: 'close' }),
    );
    streaming.socket.write(data.subarray(0, 1000));
    let inFlight: string | undefined;
    t.true(
      await until(
        async () => (inFlight = (await readdir(path.join(storage, '_tmp'))).find((n) => !tmpBefore.has(n))) !== undefined,
        10_000,
      ),
    );
    await utimes(path.join(storage, '_tmp', inFlight!), past, past);

    const report = await gc();
    for (const [file, what] of [
      [cutOff, 'the temporary file of a cut-off write'],
      [sessionless, 'the object of an upload without a session'],
      [unrecorded, 'the object its live session never recorded'],
    ] as const) {
      await t.throwsAsync(access(file), undefined, `${what} is gone`);
    }
    await access(young);
    await access(recorded[0]!);
    await access(path.join(storage, '_tmp', inFlight!));
    t.true(report.orphanFilesRemoved >= 2);
    t.true(report.uploadsRemoved >= 1);

    // Both live uploads complete.
    streaming.socket.write(data.subarray(1000));
    t.is((await streaming.exchange).responses[0]?.status, 202);
    t.is((await client.request(`${slow.headers.get('location')!}?digest=${sha256(data)}`, { method: 'PUT' })).status, 201);
    t.is(
      (await client.request(`${live.headers.get('location')!}?digest=${sha256(Buffer.from('recorded'))}`, { method: 'PUT' })).status,
      201,
    );
  },
);

test('crash debris is removed at start-up, without a collection', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'signet-debris-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const first = await startTestRegistry({ dataDir });
  const own = createClient(first.url);
  const live = await own.request('/v2/gc/startup/blobs/uploads/', { method: 'POST' });
  t.is((await own.request(live.headers.get('location')!, { method: 'PATCH', body: 'recorded' })).status, 202);
  const storage = path.join(dataDir, 'storage');
  const debris = [
    path.join(storage, '_tmp', randomUUID()),
    path.join(storage, 'uploads', `${randomUUID()}.${'0'.repeat(16)}-abcdef012345`),
  ];
  const past = new Date(Date.now() - 30 * 60_000);
  for (const file of debris) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, randomBytes(100));
    await utimes(file, past, past);
  }
  const liveChunks = async (): Promise<string[]> =>
    (await readdir(path.join(storage, 'uploads'))).filter((name) => name.startsWith(`${live.headers.get('docker-upload-uuid')!}.`));
  for (const name of await liveChunks()) await utimes(path.join(storage, 'uploads', name), past, past);
  await first.close();

  const second = await startTestRegistry({ dataDir });
  t.teardown(() => second.close());
  const gone = async (file: string): Promise<boolean> =>
    access(file).then(
      () => false,
      () => true,
    );
  t.true(await until(async () => (await Promise.all(debris.map(gone))).every(Boolean), 10_000), 'the debris went at start-up');
  t.is((await liveChunks()).length, 1, "the live session's chunk stays");
  const status = await createClient(second.url).request(live.headers.get('location')!);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), '0-7');
});

test.serial('a push racing the collection: every accepted manifest stays fully readable', async (t) => {
  // The same layers are pushed, dropped and pushed again while collections run back to back with
  // a short grace: each round starts just as the last round's blobs become collectable, so the
  // collector is deleting exactly what the pusher links again.
  const layers = Array.from({ length: 3 }, () => makeImage({ layers: 1 }).layers[0]!);
  let stop = false;
  const collector = (async () => {
    let runs = 0;
    while (!stop) {
      await gc({ graceSeconds: 0.5 });
      runs += 1;
    }
    return runs;
  })();
  let accepted = 0;
  let refused = 0;
  for (let round = 0; round < 8; round++) {
    await sleep(600);
    const image = makeImage({ layers: 0 });
    image.layers = [layers[round % 3]!];
    const manifest = blobOf(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: image.config.mediaType, digest: image.config.digest, size: image.config.size },
          layers: image.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
        }),
      ),
      'application/vnd.oci.image.manifest.v1+json',
    );
    image.manifest = manifest;
    // As a client does on MANIFEST_BLOB_UNKNOWN: push the blobs again and retry.
    for (let attempt = 0; attempt < 20; attempt++) {
      for (const b of [image.config, ...image.layers]) t.is((await client.pushBlob('gc/race', b)).status, 201);
      const put = await client.pushManifest('gc/race', 'tag', manifest);
      if (put.status === 201) {
        accepted += 1;
        await readable(t, 'gc/race', image);
        break;
      }
      refused += 1;
      t.is(put.status, 400);
      t.is(await errorCode(put), 'MANIFEST_BLOB_UNKNOWN');
    }
    // Untag so the next collection may take the blobs again.
    await client.request(`/v2/gc/race/manifests/${manifest.digest}`, { method: 'DELETE' });
  }
  stop = true;
  const runs = await collector;
  t.true(runs > 0);
  t.true(accepted > 0, `accepted ${accepted}, refused ${refused}`);
});

test.serial('signet gc prints a summary (dry run)', async (t) => {
  const { stdout } = await run(process.execPath, [
    '--import',
    'tsx',
    path.resolve('server/main.ts'),
    '--registry',
    registry.url,
    'gc',
    '--dry-run',
  ]);
  t.regex(stdout, /^dry run: would remove \d+ blob\(s\), \d+ manifest\(s\), \d+ stale upload\(s\), \d+ orphan file\(s\): [\d.]+ MiB/m);
});

test.serial('a repository is deleted as the README says: its manifests by digest, then gc --delete-untagged', async (t) => {
  const a = makeImage({ layers: 1 });
  const b = makeImage({ layers: 1, architecture: 'arm64' });
  const single = makeImage({ layers: 1 });
  for (const image of [a, b]) await client.pushImage('doomed/app', image);
  const index = makeIndex([a, b]);
  await client.pushManifest('doomed/app', 'multi', index);
  await client.pushImage('doomed/app', single, 'v1');
  await client.pushManifest('doomed/app', 'v1-again', single.manifest);
  const catalog = async (): Promise<string[]> =>
    ((await (await client.request('/v2/_catalog')).json()) as { repositories: string[] }).repositories;
  t.true((await catalog()).includes('doomed/app'));
  // What `skopeo delete docker://host/doomed/app:<tag>` sends for each tag: the manifest it names, by digest.
  for (const digest of [index.digest, single.manifest.digest]) {
    t.is((await client.request(`/v2/doomed/app/manifests/${digest}`, { method: 'DELETE' })).status, 202);
  }
  t.deepEqual(((await (await client.request('/v2/doomed/app/tags/list')).json()) as { tags: string[] }).tags, []);
  t.true((await catalog()).includes('doomed/app'), "the index's platform manifests are still there");
  await gc({ deleteUntagged: true });
  t.false((await catalog()).includes('doomed/app'));
  const repos = (await (await client.request('/api/v1/projects/doomed/repositories')).json()) as { repositories: unknown[] };
  t.deepEqual(repos.repositories, []);
  t.is(await blobStatus('doomed/app', a.layers[0]!.digest), 404);
  t.is((await client.request('/api/v1/projects/doomed', { method: 'DELETE' })).status, 204, 'the empty project can go too');
});
