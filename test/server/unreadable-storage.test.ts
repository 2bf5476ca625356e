// Blob files the registry can no longer read: permissions changed under it (a restore or a copy
// by another user, an operator's chmod) or a failing disk. A pull is answered 503 naming the
// reason, as a refused write is (disk-full.test.ts), instead of 500 "unknown error", and it
// is served again once the operator fixes the files. Root reads every file whatever its mode, so
// the server runs as root without the capabilities that allow it (setpriv drops
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH), which needs root to arrange; another user would
// need read access to the checkout, which a CI directory need not give.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { testWithCommands } from '../helpers/env.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { blobOf } from '../helpers/oci-layout.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const WITHOUT_DAC = ['setpriv', '--bounding-set=-dac_override,-dac_read_search'];

const test = testWithCommands('unreadable storage', ['setpriv'], { root: true });

let dir: string;
let server: ServerProcess;
let storage: string;

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-unreadable-'));
  storage = path.join(dir, 'storage');
  const env = {
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: storage,
    REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
    REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
  };
  server = await startServerProcess(env, 120_000, { wrapper: WITHOUT_DAC });
});

test.after.always(async () => {
  await server?.kill();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function refusal(res: Response): Promise<OciErrorBody['errors'][number] | undefined> {
  const body = (await res.json()) as OciErrorBody;
  return body.errors[0];
}

test.serial('a blob file the registry cannot read is answered 503 in words, and served again once it can', async (t) => {
  const client = createClient(server.url);
  const blob = blobOf(randomBytes(300 * 1024), 'application/octet-stream');
  t.is((await client.pushBlob('team/app', blob)).status, 201);
  const head = await client.request(`/v2/team/app/blobs/${blob.digest}`, { method: 'HEAD' });
  t.is(head.status, 200);
  const hex = blob.digest.slice('sha256:'.length);
  const fileDir = path.join(storage, 'blobs', 'sha256', hex.slice(0, 2));
  const file = path.join(fileDir, hex);

  for (const [what, target] of [
    ['the file', file],
    ['its directory', fileDir],
  ] as const) {
    await chmod(target, 0);
    try {
      const res = await client.request(`/v2/team/app/blobs/${blob.digest}`);
      t.is(res.status, 503, what);
      t.is(res.headers.get('retry-after') !== null, true, `${what}: Retry-After`);
      const error = await refusal(res);
      t.is(error?.code, 'UNAVAILABLE', what);
      t.regex(error?.message ?? '', /permission denied/, what);
    } finally {
      await chmod(target, target === file ? 0o644 : 0o755);
    }
  }

  const served = await client.request(`/v2/team/app/blobs/${blob.digest}`);
  t.is(served.status, 200);
  t.deepEqual(Buffer.from(await served.arrayBuffer()), blob.data);
  // The operator learns which file, once per refusal, at warning level: no outage, no stack trace.
  const refusals = server.logs.filter((l) => l.msg === 'storage refused the request');
  t.is(refusals.length, 2);
  for (const line of refusals) {
    t.is(line.level, 40);
    t.is(line.reason, 'permission denied');
    t.true(String(line.cause).includes(hex), 'the line names the file');
  }
  t.deepEqual(
    server.logs.filter((l) => Number(l.level) >= 50),
    [],
    'no unexplained error',
  );
});
