import http from 'node:http';
import test from 'ava';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';

let registry: TestRegistry;
test.before(async () => {
  registry = await startTestRegistry();
});
test.after.always(() => registry?.close());

test('GET /v2/ answers 200 with the API version header', async (t) => {
  const res = await fetch(`${registry.url}/v2/`);
  t.is(res.status, 200);
  t.is(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  t.deepEqual(await res.json(), {});
});

test('unknown endpoints answer a JSON OCI error, with the API version header', async (t) => {
  const res = await fetch(`${registry.url}/v2/foo/unknown/thing`);
  t.is(res.status, 404);
  t.is(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  const body = (await res.json()) as { errors: { code: string }[] };
  t.is(body.errors[0]?.code, 'NOT_FOUND');
});

test('a known path with an unsupported method is 405 UNSUPPORTED', async (t) => {
  const res = await fetch(`${registry.url}/v2/foo/tags/list`, { method: 'POST' });
  t.is(res.status, 405);
  const body = (await res.json()) as { errors: { code: string }[] };
  t.is(body.errors[0]?.code, 'UNSUPPORTED');
});

test('HEAD errors carry the status and no body', async (t) => {
  const res = await fetch(`${registry.url}/v2/nothing/here/manifests/latest`, { method: 'HEAD' });
  t.is(res.status, 404);
  t.is(await res.text(), '');
});

test('routes are found whichever section of the table holds them: a lookaside path under /v2', async (t) => {
  // Routes are matched by sections of the path (server/routes.ts): a lookaside path that a
  // registry path prefixes is still the lookaside's, and the registry's routes beside it are
  // still the registry's.
  const moved = await startTestRegistry({ env: { REGISTRY_SIGNATURES_LOOKASIDE_PATH: '/v2/sigstore' } });
  t.teardown(() => moved.close());
  const signature = `${moved.url}/v2/sigstore/team/app@sha256=${'a'.repeat(64)}/signature-1`;
  const read = await fetch(signature);
  t.is(read.status, 404);
  t.is(await read.text(), '', "the lookaside's bare 404, not the registry's JSON one");
  t.is((await fetch(signature, { method: 'POST' })).status, 405, 'a known path with another method');
  const tags = await fetch(`${moved.url}/v2/sigstore/app/tags/list`);
  t.is(tags.status, 404);
  t.is(((await tags.json()) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_UNKNOWN');
  t.is((await fetch(`${moved.url}/v2/`)).status, 200);
  t.is((await fetch(`${moved.url}/healthz`)).status, 200);
});

/** Status and raw header lines of one request, read as the wire carried them. */
async function rawAnswer(url: string, method: string, headers: Record<string, string> = {}): Promise<{ status: number; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const lines: string[] = [];
      for (let i = 0; i < res.rawHeaders.length; i += 2) lines.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode!, lines }));
    });
    req.once('error', reject);
    req.end();
  });
}

test('every kind of answer carries the headers every answer carries, once, and a blob HEAD the same as its GET', async (t) => {
  // Some answers are written with their status line in one go, others through Koa header by
  // header (server/response.ts): all of them must say the same.
  const client = createClient(registry.url);
  const image = makeImage();
  t.is((await client.pushImage('base/headers', image, 'v1')).status, 201);
  const layer = image.layers[0]!;
  const v2 = (path: string): string => `${registry.url}/v2/base/headers${path}`;
  const answers: [string, string, string, Record<string, string>?][] = [
    ['blob HEAD', 'HEAD', v2(`/blobs/${layer.digest}`)],
    ['blob GET', 'GET', v2(`/blobs/${layer.digest}`)],
    ['blob HEAD of a range', 'HEAD', v2(`/blobs/${layer.digest}`), { Range: 'bytes=0-9' }],
    ['blob HEAD, not modified', 'HEAD', v2(`/blobs/${layer.digest}`), { 'If-None-Match': `"${layer.digest}"` }],
    ['manifest HEAD', 'HEAD', v2('/manifests/v1')],
    ['manifest GET', 'GET', v2('/manifests/v1')],
    ['tags/list', 'GET', v2('/tags/list')],
    ['tags/list, paged', 'GET', v2('/tags/list?n=1')],
    ['unknown blob', 'HEAD', v2(`/blobs/sha256:${'0'.repeat(64)}`)],
    ['unknown manifest', 'GET', v2('/manifests/nope')],
    ['health', 'GET', `${registry.url}/healthz`],
  ];
  const seen = new Map<string, string[]>();
  for (const [label, method, url, headers] of answers) {
    const { status, lines } = await rawAnswer(url, method, headers);
    t.true(status < 500, `${label}: ${status}`);
    seen.set(label, lines);
    const count = (line: string): number => lines.filter((l) => l === line).length;
    t.is(count('Docker-Distribution-API-Version: registry/2.0'), 1, label);
    t.is(count('X-Content-Type-Options: nosniff'), 1, label);
    // containers/image reads the signature extension's header from its ping of /v2/.
    t.is(count('X-Registry-Supports-Signatures: 1'), url.startsWith(`${registry.url}/v2/`) ? 1 : 0, label);
    t.is(new Set(lines.map((l) => l.split(':')[0]!.toLowerCase())).size, lines.length, `${label}: a header twice`);
  }
  // In any order: the two ways of writing a head order them differently.
  const withoutDate = (label: string): string[] =>
    seen
      .get(label)!
      .filter((l) => !l.startsWith('Date:'))
      .sort();
  t.deepEqual(withoutDate('blob HEAD'), withoutDate('blob GET'));
  t.true(withoutDate('blob HEAD').includes(`Content-Length: ${layer.size}`));
  t.deepEqual(withoutDate('manifest HEAD'), withoutDate('manifest GET'));
  t.true(withoutDate('manifest GET').includes(`Content-Length: ${image.manifest.size}`));
  t.true(withoutDate('tags/list').includes('Content-Type: application/json; charset=utf-8'));
});
