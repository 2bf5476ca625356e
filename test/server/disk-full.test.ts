// A full disk under the filesystem storage: a file system of the test's own (a tmpfs with a size
// limit, so root is needed to mount it, as CI runs). A push that does not fit is answered with the
// storage-full error (507, its size named) before the client's body is even all sent, leaves no
// partial blob, and the upload goes on from where it stood once space is freed; pushes that fit
// keep working meanwhile. The same file system remounted read-only refuses pushes as the storage
// being unavailable, in words, while pulls go on.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { testWithCommands } from '../helpers/env.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { blobOf } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

const MiB = 1024 * 1024;
const test = testWithCommands('disk full (tmpfs)', ['mount', 'umount'], { root: true });

let dir: string;
let mountPoint: string;
let registry: TestRegistry;
let logs: CapturedLog;
let client: ReturnType<typeof createClient>;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-disk-full-'));
  mountPoint = path.join(dir, 'fs');
  await mkdir(mountPoint);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=40m,mode=0700', 'tmpfs', mountPoint]);
  // Should the worker end without the after hook (a timeout), leave no mount behind.
  process.once('exit', () => spawnSync('umount', ['-l', mountPoint], { stdio: 'ignore' }));
  logs = captureLog();
  registry = await startTestRegistry({
    dataDir: dir,
    log: logs.log,
    env: { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(mountPoint, 'storage') },
  });
  client = createClient(registry.url);
});

test.after.always(async () => {
  await registry?.close();
  if (mountPoint) {
    try {
      execFileSync('umount', [mountPoint]);
    } catch {
      execFileSync('umount', ['-l', mountPoint]);
    }
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Fills the file system until `free` bytes are left (tmpfs counts in pages). */
async function fillUntil(free: number): Promise<string> {
  const { bavail, bsize } = await statfs(mountPoint);
  const filler = path.join(mountPoint, `filler-${randomBytes(4).toString('hex')}`);
  await writeFile(filler, Buffer.alloc(Math.max(bavail * bsize - free, 0)));
  return filler;
}

/** Every file under the storage root, relative to it. */
async function storedFiles(): Promise<string[]> {
  const root = path.join(mountPoint, 'storage');
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

/** The OCI error of a response, which must be JSON (never Koa's plain-text 500). */
async function errorOf(res: Response): Promise<OciErrorBody['errors'][number]> {
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('application/json')) throw new Error(`${res.status} answered as ${type}: ${await res.text()}`);
  return ((await res.json()) as OciErrorBody).errors[0]!;
}

test.serial('a push that does not fit is refused with the storage-full error, and resumes once space is freed', async (t) => {
  const small = blobOf(randomBytes(100_000), 'application/octet-stream');
  t.is((await client.pushBlob('full/app', small)).status, 201, 'a small push works before');

  const big = blobOf(randomBytes(12 * MiB), 'application/octet-stream');
  const started = await client.request('/v2/full/app/blobs/uploads/', { method: 'POST' });
  const location = started.headers.get('location')!;
  const first = await client.request(location, {
    method: 'PATCH',
    body: new Uint8Array(big.data.subarray(0, 4 * MiB)),
    headers: { 'Content-Range': `0-${4 * MiB - 1}` },
  });
  t.is(first.status, 202);
  const filler = await fillUntil(2 * MiB);
  const before = await storedFiles();

  // 8 MiB into 2 MiB: refused while the body is still coming, and the client reads why.
  const refused = await client.request(location, {
    method: 'PATCH',
    body: new Uint8Array(big.data.subarray(4 * MiB)),
    headers: { 'Content-Range': `${4 * MiB}-${big.size - 1}` },
  });
  t.is(refused.status, 507);
  const error = await errorOf(refused);
  t.is(error.code, 'STORAGE_FULL');
  t.regex(error.message, /no space left for the 8388608 bytes of this request/);
  t.deepEqual(error.detail, { dependency: 'storage', requested: 8 * MiB });
  t.deepEqual(await storedFiles(), before, 'nothing partial stays behind');

  // The upload is still where its last complete chunk left it.
  const status = await client.request(location);
  t.is(status.status, 204);
  t.is(status.headers.get('range'), `0-${4 * MiB - 1}`);

  // A monolithic push of the same: refused, nothing stored, the blob unknown.
  const monolithic = await client.pushBlob('full/app', big);
  t.is(monolithic.status, 507);
  t.is((await errorOf(monolithic)).code, 'STORAGE_FULL');
  t.is((await client.request(`/v2/full/app/blobs/${big.digest}`, { method: 'HEAD' })).status, 404);
  t.deepEqual(await storedFiles(), before);

  // What fits is still stored.
  const another = blobOf(randomBytes(200_000), 'application/octet-stream');
  t.is((await client.pushBlob('full/app', another)).status, 201, 'a small push works while the disk is nearly full');
  const got = await client.request(`/v2/full/app/blobs/${another.digest}`);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), another.data);

  // Space freed: the same PATCH goes on from the upload's offset, and the blob is whole.
  await rm(filler);
  const resumed = await client.request(location, {
    method: 'PATCH',
    body: new Uint8Array(big.data.subarray(4 * MiB)),
    headers: { 'Content-Range': `${4 * MiB}-${big.size - 1}` },
  });
  t.is(resumed.status, 202);
  t.is((await client.request(`${location}?digest=${big.digest}`, { method: 'PUT' })).status, 201);
  const pulled = await client.request(`/v2/full/app/blobs/${big.digest}`);
  t.true(Buffer.from(await pulled.arrayBuffer()).equals(big.data));
});

test.serial('each refusal is one warning line naming the size, not an error with a stack trace', (t) => {
  const full = logs.withMessage('storage full');
  t.is(full.length, 2, 'the PATCH and the monolithic POST');
  t.deepEqual(
    full.map((line) => line.requested),
    [8 * MiB, 12 * MiB],
  );
  t.true(full.every((line) => line.level === 40 && line.err === undefined));
  t.deepEqual(
    logs.lines.filter((line) => (line.level as number) >= 50),
    [],
    'no error lines',
  );
});

test.serial('a file system remounted read-only refuses pushes as the storage unavailable, in words, and still serves pulls', async (t) => {
  // ext4 remounts itself read-only after a disk error (errors=remount-ro); the registry said 500
  // "unknown error" to every push then.
  const before = blobOf(randomBytes(50_000), 'application/octet-stream');
  t.is((await client.pushBlob('ro/app', before)).status, 201);
  const lines = logs.lines.length;
  execFileSync('mount', ['-o', 'remount,ro', mountPoint]);
  try {
    const during = blobOf(randomBytes(50_000), 'application/octet-stream');
    const refused = await client.pushBlob('ro/app', during);
    t.is(refused.status, 503);
    const error = await errorOf(refused);
    t.is(error.code, 'UNAVAILABLE');
    t.regex(error.message, /storage is unavailable \(the file system is read-only\)/);
    const refusals = logs.lines.slice(lines).filter((line) => line.msg === 'storage refused the request');
    t.is(refusals.length, 1, 'the operator is told, once per refusal');
    t.is(refusals[0]?.reason, 'the file system is read-only');
    const pulled = await client.request(`/v2/ro/app/blobs/${before.digest}`);
    t.is(pulled.status, 200);
    t.true(Buffer.from(await pulled.arrayBuffer()).equals(before.data), 'what is stored is still served');
    t.deepEqual(
      logs.lines.slice(lines).filter((line) => (line.level as number) >= 50),
      [],
      'no error lines with a stack trace',
    );
  } finally {
    execFileSync('mount', ['-o', 'remount,rw', mountPoint]);
  }
  const after = blobOf(randomBytes(50_000), 'application/octet-stream');
  t.is((await client.pushBlob('ro/app', after)).status, 201, 'pushes work again once the file system is writable');
});
