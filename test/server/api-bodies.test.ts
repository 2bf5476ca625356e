// Bodies of the management API (and the other bodies read into memory) are read with a limit and
// checked against a schema: too large, not JSON, the wrong shape or an unknown field is a 4xx OCI
// error, never a 500, and a refused request changes nothing (a garbage collection does not run).
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { blobOf } from '../helpers/oci-layout.js';
import { rawRequest, requestHead } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
let client: ReturnType<typeof createClient>;

test.before(async () => {
  // No grace: any collection that runs removes an unreferenced blob at once, which shows it ran.
  registry = await startTestRegistry({ env: { REGISTRY_GC_GRACE: '0' } });
  client = createClient(registry.url);
});
test.after.always(() => registry?.close());

async function refusal(res: Response): Promise<{ status: number; code: string | undefined; message: string }> {
  const text = await res.text();
  let body: OciErrorBody | undefined;
  try {
    body = JSON.parse(text) as OciErrorBody;
  } catch {
    // not the error shape: the assertions below say so
  }
  return { status: res.status, code: body?.errors?.[0]?.code, message: `${res.status} ${text.slice(0, 200)}` };
}

test.serial(
  'POST /api/v1/gc: a body that is too large, not an object, or has unknown or impossible fields is a 4xx and runs nothing',
  async (t) => {
    const garbage = blobOf(randomBytes(100), 'application/octet-stream');
    t.is((await client.pushBlob('bodies/gc', garbage)).status, 201);
    const bodies: [string, number][] = [
      [JSON.stringify({ dryRun: false, pad: 'x'.repeat(5000) }), 413],
      ['null', 400],
      ['[]', 400],
      ['"x"', 400],
      ['42', 400],
      ['{"graceSeconds":1e400}', 400],
      ['{"graceSeconds":-1}', 400],
      ['{"graceSeconds":"0"}', 400],
      ['{"dryRun":"no"}', 400],
      // A misspelt dryRun must not run a real collection.
      ['{"dryrun":true}', 400],
      ['{"dryRun":', 400],
    ];
    for (const [body, status] of bodies) {
      const got = await refusal(await client.request('/api/v1/gc', { method: 'POST', body }));
      t.is(got.status, status, `${body.slice(0, 40)}: ${got.message}`);
      t.is(got.code, 'REQUEST_INVALID', body.slice(0, 40));
    }
    t.is((await client.request(`/v2/bodies/gc/blobs/${garbage.digest}`, { method: 'HEAD' })).status, 200, 'no collection ran');

    // An empty body is every default: a real run, which removes the unreferenced blob.
    const res = await client.request('/api/v1/gc', { method: 'POST' });
    t.is(res.status, 200);
    t.regex(await res.text(), /"report"/);
    t.is((await client.request(`/v2/bodies/gc/blobs/${garbage.digest}`, { method: 'HEAD' })).status, 404);
  },
);

test('project API bodies: too large is 413, the wrong shape or an unknown field 400, and nothing changes', async (t) => {
  t.is((await client.request('/api/v1/projects', { method: 'POST', body: JSON.stringify({ name: 'apibodies' }) })).status, 201);
  const cases: [string, string, string, number][] = [
    ['POST', '/api/v1/projects', JSON.stringify({ name: 'huge', public: true, pad: 'x'.repeat(70 * 1024) }), 413],
    ['POST', '/api/v1/projects', 'null', 400],
    ['POST', '/api/v1/projects', '{}', 400],
    ['POST', '/api/v1/projects', JSON.stringify({ name: 'typo', pubic: true }), 400],
    ['POST', '/api/v1/projects', JSON.stringify({ name: 7 }), 400],
    ['PATCH', '/api/v1/projects/apibodies', JSON.stringify({ signedonly: true }), 400],
    ['PATCH', '/api/v1/projects/apibodies', JSON.stringify({ public: 'yes' }), 400],
    ['PATCH', '/api/v1/projects/apibodies', JSON.stringify({ quotaBytes: 1.5 }), 400],
    ['PATCH', '/api/v1/projects/apibodies', '{"quotaBytes":1e400}', 400],
    ['PATCH', '/api/v1/projects/apibodies', '[]', 400],
    ['PUT', '/api/v1/projects/apibodies/members/bob', JSON.stringify({ role: 'owner' }), 400],
    ['PUT', '/api/v1/projects/apibodies/members/bob', '', 400],
  ];
  for (const [method, path, body, status] of cases) {
    const got = await refusal(await client.request(path, { method, body }));
    t.is(got.status, status, `${method} ${path} ${body.slice(0, 40)}: ${got.message}`);
    t.is(got.code, 'REQUEST_INVALID', `${method} ${path} ${body.slice(0, 40)}`);
  }
  const project = (await (await client.request('/api/v1/projects/apibodies')).json()) as {
    public: boolean;
    signedOnly: boolean;
    quotaBytes: unknown;
    members: unknown[];
  };
  t.deepEqual([project.public, project.signedOnly, project.quotaBytes, project.members], [false, false, null, []]);
  t.is((await client.request('/api/v1/projects/huge')).status, 404);
  t.is((await client.request('/api/v1/projects/typo')).status, 404);
});

test('a body shorter than its Content-Length is refused in the error shape, not as a 500', async (t) => {
  const port = Number(new URL(registry.url).port);
  const body = '{"name":"short"}';
  const head = requestHead('POST', '/api/v1/projects', {
    Host: 'x',
    'Content-Type': 'application/json',
    'Content-Length': String(body.length + 10),
  });
  // The client ends its side after too few bytes: Node's parser or the body reader refuses it.
  const exchange = await rawRequest(port, head + body, { halfClose: true, timeoutMs: 5000 });
  const status = exchange.responses[0]?.status;
  t.true(status === undefined || (status >= 400 && status < 500), `status ${status}`);
  t.is((await client.request('/api/v1/projects/short')).status, 404);
});
