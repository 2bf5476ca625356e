// Two replicas on one PostgreSQL database and one shared filesystem directory (an NFS mount, as
// deployments without S3 run them): an upload's requests may land on either, and the filesystem
// store appends a chunk to the previous chunk's file in place, so what one replica writes must
// never reach a file the other has published.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { blobKey } from '../../storage/paths.js';
import { parseDigest } from '../../storage/digest.js';
import { testWithCommands } from '../helpers/env.js';
import { createClient } from '../helpers/oci-client.js';
import { heldRequest } from '../helpers/raw-http.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { sleep, until } from '../helpers/wait.js';

const test = testWithCommands('replicas on shared PostgreSQL and filesystem', [], { postgres: true });
let database: TestDatabase;
let dir: string;
let a: ServerProcess;
let b: ServerProcess;

test.before(async () => {
  database = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-replicas-fs-'));
  const env = {
    REGISTRY_DATABASE_URL: database.url,
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
    REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
    // Sessions untouched for 2 s are stale to garbage collection.
    REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE: '2',
  };
  [a, b] = await Promise.all([startServerProcess(env), startServerProcess(env)]);
});
test.after.always(async () => {
  await a?.kill('SIGTERM');
  await b?.kill('SIGTERM');
  await database?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Whether the replica's process holds a file of the upload open (with `anyWrite`: or any file under
 * the storage's temporary directory, where a chunk of a new object is written first).
 */
async function holdsUploadOpen(replica: ServerProcess, uploadId: string, anyWrite = false): Promise<boolean> {
  const fds = `/proc/${replica.child.pid}/fd`;
  for (const fd of await readdir(fds).catch(() => [] as string[])) {
    const target = await readlink(path.join(fds, fd)).catch(() => '');
    if (target.includes(`${path.sep}uploads${path.sep}${uploadId}`)) return true;
    if (anyWrite && target.includes(`${path.sep}storage${path.sep}_tmp${path.sep}`)) return true;
  }
  return false;
}

test.serial('a PATCH appending on one replica while the PUT publishes on the other never writes into the blob', async (t) => {
  const first = randomBytes(300_000);
  const digest = `sha256:${createHash('sha256').update(first).digest('hex')}`;
  const onA = createClient(a.url);
  const start = await onA.request('/v2/team/app/blobs/uploads/', { method: 'POST' });
  const id = start.headers.get('docker-upload-uuid')!;
  const patched = await onA.request(start.headers.get('location')!, { method: 'PATCH', body: new Uint8Array(first) });
  t.is(patched.status, 202);
  const location = patched.headers.get('location')!;
  // A second PATCH on A, its body held back: A opens the first chunk's file to append to it.
  const extra = 4 * 1024 * 1024;
  const req = heldRequest(new URL(location, a.url), 'PATCH', {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(extra),
  });
  t.true(await until(() => holdsUploadOpen(a, id), 10_000), 'replica A never opened the upload');
  // The PUT on B, which wrote nothing of the upload.
  t.is((await createClient(b.url).request(`${location}?digest=${digest}`, { method: 'PUT' })).status, 201);
  req.end(Buffer.alloc(extra, 0x41));
  t.is((await req.answered).status, 404, 'the late PATCH of a finished upload');
  const file = path.join(dir, 'storage', blobKey(parseDigest(digest)!));
  const stored = await readFile(file);
  t.is(stored.length, first.length, 'the published file holds the blob and nothing more');
  t.is(`sha256:${createHash('sha256').update(stored).digest('hex')}`, digest);
  for (const replica of [a, b]) {
    const pulled = await createClient(replica.url).request(`/v2/team/app/blobs/${digest}`);
    t.true(Buffer.from(await pulled.arrayBuffer()).equals(first));
  }
});

test.serial('garbage collection on one replica leaves a session whose chunk streams into the other', async (t) => {
  const onA = createClient(a.url);
  const start = await onA.request('/v2/team/slow/blobs/uploads/', { method: 'POST' });
  const location = start.headers.get('location')!;
  // Idle past the purge age, then a slow PATCH on B: headers and a first part, the rest later.
  await sleep(2500);
  const body = randomBytes(256 * 1024);
  const req = heldRequest(new URL(location, b.url), 'PATCH', {
    'Content-Type': 'application/octet-stream',
    'Content-Length': String(body.length),
  });
  req.write(body.subarray(0, 1024));
  t.true(await until(() => holdsUploadOpen(b, start.headers.get('docker-upload-uuid')!, true), 10_000), 'B never took the chunk');
  const gc = await onA.request('/api/v1/gc', { method: 'POST', body: JSON.stringify({}), headers: { 'Content-Type': 'application/json' } });
  t.is(gc.status, 200);
  req.end(body.subarray(1024));
  const patched = await req.answered;
  t.is(patched.status, 202, 'the PATCH on B went on');
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  t.is((await onA.request(`${patched.location}?digest=${digest}`, { method: 'PUT' })).status, 201);
});
