// Property-based hostile input (fast-check) against a running registry with content in it:
// malformed names, references, digests, upload ids, Range and Content-Range headers, query
// strings, credentials, JSON and byte bodies, signatures that are not OpenPGP, and over raw
// sockets Content-Length values that lie and framing that is broken. Every answer must be a
// success where the input happens to be valid, or a 4xx with an OCI error body (HEAD: no body;
// lookaside reads: a bare 404); never a 5xx, never a hang; and the seeded project's content is
// byte for byte what it was.
//
// Users: `fuzzer` is admin of project `fuzz` (its writes reach deep into the handlers) and only
// a guest in `seed` (its writes there must all be refused). `root` seeds and is never fuzzed with.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { createRegistryRoutes } from '../../server/routes.js';
import { basic, createProject, writeHtpasswd } from '../helpers/auth.js';
import { createClient, type OciErrorBody } from '../helpers/oci-client.js';
import { makeImage, makeIndex, OCI_MANIFEST, sha256 } from '../helpers/oci-layout.js';
import { rawRequest, requestHead } from '../helpers/raw-http.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { makeKey, payload, sign } from '../helpers/signing.js';

const REQUEST_TIMEOUT_MS = 10_000;
/** A raw exchange is over once the server closes; well within the time limit, so a hang fails. */
const RAW_TIMEOUT_MS = 5_000;
/**
 * Each property stops early (and passes) when the machine is too slow to finish its runs in time.
 * Longer than the request timeouts, so a request that hangs fails its run before the limit hides it.
 */
const TIME_LIMIT_MS = 20_000;

let dir: string;
let registry: TestRegistry;
let port: number;
const AUTH = { fuzzer: basic('fuzzer', 'fuzz-pw'), root: basic('root', 'root-pw') };
const seedImage = makeImage({ layers: 2 });
const seedNested = makeImage({ layers: 1 });
const fuzzImage = makeImage({ layers: 1 });
const known = { digests: [] as string[], uploadIds: [] as string[] };

test.before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'signet-hostile-'));
  await writeHtpasswd(path.join(dir, 'htpasswd'), { root: 'root-pw', fuzzer: 'fuzz-pw' });
  registry = await startTestRegistry({
    env: {
      REGISTRY_AUTH: 'htpasswd',
      REGISTRY_AUTH_HTPASSWD_PATH: path.join(dir, 'htpasswd'),
      REGISTRY_AUTH_ADMINS: 'root',
      // The fuzz sends the fuzzer's wrong password by the hundred: with the bound on guessing,
      // every request as the fuzzer would be a 429 after the tenth, and the routes behind
      // authentication would go untested. The bound has its own tests (test/auth/guess-limit.test.ts).
      REGISTRY_AUTH_HTPASSWD_MAXFAILURES: '0',
    },
  });
  port = Number(new URL(registry.url).port);
  await createProject(registry.url, ['root', 'root-pw'], 'seed', { public: false, members: { fuzzer: 'guest' } });
  await createProject(registry.url, ['root', 'root-pw'], 'fuzz', { public: true, members: { fuzzer: 'admin' } });
  const root = createClient(registry.url, { Authorization: AUTH.root });
  const index = makeIndex([seedImage]);
  for (const [name, image, tag] of [
    ['seed/app', seedImage, 'v1'],
    ['seed/team/nested', seedNested, 'v2'],
    ['fuzz/app', fuzzImage, 'v1'],
  ] as const) {
    const res = await root.pushImage(name, image, tag);
    if (res.status !== 201) throw new Error(`seeding ${name}: ${res.status} ${await res.text()}`);
  }
  if ((await root.pushManifest('seed/app', 'multi', index)).status !== 201) throw new Error('seeding the index');
  // A trusted key and a signature in each project, so the signature routes have content.
  const key = await makeKey();
  for (const [project, image, repo] of [
    ['seed', seedImage, 'seed/app'],
    ['fuzz', fuzzImage, 'fuzz/app'],
  ] as const) {
    const added = await root.request(`/api/v1/projects/${project}/keys`, { method: 'POST', body: new Uint8Array(key.publicBinary) });
    if (added.status !== 201) throw new Error(`adding a key: ${added.status}`);
    const signature = await sign(key, payload(image.manifest.digest, `${registry.host}/${repo}:v1`));
    const put = await root.request(`/sigstore/${repo}@sha256=${image.manifest.digest.slice(7)}/signature-1`, {
      method: 'PUT',
      body: new Uint8Array(signature),
    });
    if (put.status !== 201) throw new Error(`seeding a signature: ${put.status} ${await put.text()}`);
  }
  known.digests.push(
    ...[seedImage, seedNested, fuzzImage].flatMap((i) => [i.manifest.digest, i.config.digest, ...i.layers.map((l) => l.digest)]),
  );
  known.digests.push(index.digest);
  const session = await root.request('/v2/fuzz/app/blobs/uploads/', { method: 'POST' });
  known.uploadIds.push(session.headers.get('location')!.split('/').pop()!);
  before = await snapshot();
});
test.after.always(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// --- what must not change ----------------------------------------------------------------------

let before: unknown;

/** Everything the seed project holds, read as root: tags, manifest bytes, blob bytes, signatures, settings. */
async function snapshot(): Promise<unknown> {
  const root = createClient(registry.url, { Authorization: AUTH.root });
  const read = async (p: string): Promise<string> => {
    const res = await root.request(p, { headers: { Accept: [OCI_MANIFEST, 'application/vnd.oci.image.index.v1+json'].join(', ') } });
    return `${res.status} ${sha256(Buffer.from(await res.arrayBuffer()))}`;
  };
  const state: Record<string, string> = {};
  for (const repo of ['seed/app', 'seed/team/nested']) state[`${repo} tags`] = await read(`/v2/${repo}/tags/list`);
  for (const [repo, tag] of [
    ['seed/app', 'v1'],
    ['seed/app', 'multi'],
    ['seed/team/nested', 'v2'],
  ]) {
    state[`${repo}:${tag}`] = await read(`/v2/${repo}/manifests/${tag}`);
  }
  for (const [repo, image] of [
    ['seed/app', seedImage],
    ['seed/team/nested', seedNested],
  ] as const) {
    for (const blob of [image.config, ...image.layers]) state[`${repo}@${blob.digest}`] = await read(`/v2/${repo}/blobs/${blob.digest}`);
    state[`${repo} signatures`] = await read(`/extensions/v2/${repo}/signatures/${image.manifest.digest}`);
  }
  state['seed project'] = await read('/api/v1/projects/seed');
  state['seed keys'] = await read('/api/v1/projects/seed/keys');
  state.catalog = await read('/v2/_catalog');
  return state;
}

// --- judging one answer --------------------------------------------------------------------------

interface Answer {
  method: string;
  path: string;
  status: number;
  body: string;
}

/** Why the answer is wrong, or undefined when it is acceptable. */
function problem(answer: Answer): string | undefined {
  const { method, path: url, status, body } = answer;
  if (status >= 500) return `server error ${status}: ${body}`;
  if (status < 400 || method === 'HEAD') return undefined;
  // Lookaside reads answer 200 or a bare 404 (containers/image aborts on anything else); a path
  // that is no lookaside path at all gets the usual JSON 404.
  if (status === 404 && url.startsWith('/sigstore/') && method === 'GET' && body === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return `a ${status} without a JSON body: ${JSON.stringify(body.slice(0, 200))}`;
  }
  const errors = (parsed as { errors?: unknown }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return `a ${status} without an errors array: ${body.slice(0, 200)}`;
  for (const e of errors as { code?: unknown; message?: unknown }[]) {
    if (typeof e.code !== 'string' || typeof e.message !== 'string') return `an error without code and message: ${body.slice(0, 200)}`;
  }
  return undefined;
}

async function send(method: string, url: string, headers: Record<string, string>, body?: Uint8Array): Promise<Answer> {
  const res = await fetch(`${registry.url}${url}`, {
    method,
    headers,
    ...(body && method !== 'GET' && method !== 'HEAD' ? { body: new Uint8Array(body) } : {}),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    redirect: 'manual',
  });
  return { method, path: new URL(res.url || `${registry.url}${url}`).pathname, status: res.status, body: await res.text() };
}

// --- generators ------------------------------------------------------------------------------------

const hex = (length: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`));
const printable = (max: number) => fc.stringMatching(new RegExp(`^[\\x20-\\x7e]{0,${max}}$`));
const encoded = (max: number) => fc.string({ unit: 'binary', maxLength: max }).map(encodeURIComponent);
const nasty = fc.constantFrom(
  '',
  '%',
  '%zz',
  '%ff',
  '%00',
  '%E0%A4%A',
  '..',
  '.',
  '%2e%2e',
  '%2F',
  'a'.repeat(300),
  '-',
  '_',
  'A',
  '::',
  '@',
);
// JSON whose strings may hold any code unit: NUL, lone surrogates, controls.
const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }));
const text = fc.oneof(
  printable(30),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('\u0000', 'a\u0000b', '\ud800', '\udc00x'),
);

const name = fc.oneof(
  fc.constantFrom(
    'seed/app',
    'seed/team/nested',
    'fuzz/app',
    'fuzz/a/b/c',
    'fuzz',
    'nope/app',
    'seed',
    'Seed/App',
    'fuzz//app',
    '/fuzz/app',
  ),
  fc.stringMatching(/^[a-z0-9._\-/]{1,40}$/),
  encoded(30),
  nasty,
);
// Known digests are read when a value is drawn: they exist only once the registry is seeded.
const knownDigest = fc.nat({ max: 1000 }).map((i) => known.digests[i % known.digests.length]!);
const digest = fc.oneof(
  knownDigest,
  hex(64).map((h) => `sha256:${h}`),
  hex(128).map((h) => `sha512:${h}`),
  fc
    .tuple(fc.constantFrom('sha256', 'sha512', 'SHA256', 'md5', 'sha384', 'blake3', ''), fc.stringMatching(/^[0-9a-fA-FgG=+]{0,140}$/))
    .map(([a, h]) => `${a}:${h}`),
  encoded(20),
  nasty,
);
const reference = fc.oneof(
  fc.constantFrom('v1', 'v2', 'multi', 'latest', `sha256-${'a'.repeat(64)}.sig`),
  knownDigest,
  digest,
  fc.stringMatching(/^[A-Za-z0-9._-]{1,140}$/),
  nasty,
);
const uploadId = fc.oneof(
  fc.uuid(),
  fc.integer({ min: 0, max: 100 }).map(() => known.uploadIds[0]!),
  fc.stringMatching(/^[0-9a-fA-F-]{0,40}$/),
  nasty,
);
const project = fc.oneof(fc.constantFrom('seed', 'fuzz', 'nope'), fc.stringMatching(/^[a-z0-9._-]{1,20}$/), nasty);
const user = fc
  .oneof(fc.constantFrom('root', 'nobody', 'someone-else'), fc.stringMatching(/^[a-z0-9.@_-]{1,20}$/), encoded(10), nasty)
  .filter((u) => u !== 'fuzzer');
const number = fc.oneof(fc.nat().map(String), fc.constantFrom('0', '-1', '1e3', '99999999999999999999', 'NaN', '', ' 1', '0x10'));

interface Parts {
  name: string;
  ref: string;
  digest: string;
  id: string;
  project: string;
  user: string;
  number: string;
  hexHead: string;
}
const parts: fc.Arbitrary<Parts> = fc.record({
  name,
  ref: reference,
  digest,
  id: uploadId,
  project,
  user,
  number,
  hexHead: fc.oneof(
    knownDigest.map((d) => d.slice(7)),
    hex(64),
  ),
});

/** Every route of server/routes.ts, as URL templates (the test below checks that none is missing). */
const ROUTES: { methods: string[]; path: (p: Parts) => string }[] = [
  { methods: ['GET', 'HEAD'], path: () => '/healthz' },
  { methods: ['GET', 'HEAD'], path: () => '/readyz' },
  { methods: ['GET', 'HEAD'], path: () => '/metrics' },
  { methods: ['GET', 'HEAD'], path: () => '/v2/' },
  { methods: ['GET'], path: () => '/v2/_catalog' },
  { methods: ['GET'], path: (p) => `/v2/${p.name}/tags/list` },
  { methods: ['GET', 'HEAD', 'PUT', 'DELETE'], path: (p) => `/v2/${p.name}/manifests/${p.ref}` },
  { methods: ['POST'], path: (p) => `/v2/${p.name}/blobs/uploads/` },
  { methods: ['GET', 'PATCH', 'PUT', 'DELETE'], path: (p) => `/v2/${p.name}/blobs/uploads/${p.id}` },
  { methods: ['GET', 'HEAD', 'DELETE'], path: (p) => `/v2/${p.name}/blobs/${p.digest}` },
  { methods: ['GET'], path: (p) => `/v2/${p.name}/referrers/${p.digest}` },
  { methods: ['GET', 'HEAD', 'PUT', 'DELETE'], path: (p) => `/sigstore/${p.name}@sha256=${p.hexHead}/signature-${p.number}` },
  { methods: ['GET', 'PUT'], path: (p) => `/extensions/v2/${p.name}/signatures/${p.digest}` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/policy.json` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/registries.d.yaml` },
  { methods: ['GET', 'POST'], path: (p) => `/api/v1/projects/${p.project}/keys` },
  { methods: ['DELETE'], path: (p) => `/api/v1/projects/${p.project}/keys/${p.number}` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/repositories/${p.name}/signatures/${p.digest}` },
  { methods: ['GET', 'POST'], path: () => '/api/v1/projects' },
  { methods: ['GET', 'PATCH', 'DELETE'], path: (p) => `/api/v1/projects/${p.project}` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/members` },
  { methods: ['PUT', 'DELETE'], path: (p) => `/api/v1/projects/${p.project}/members/${p.user}` },
  { methods: ['GET', 'POST'], path: () => '/token' },
  { methods: ['GET', 'POST'], path: (p) => `/api/v1/projects/${p.project}/robots` },
  { methods: ['DELETE'], path: (p) => `/api/v1/projects/${p.project}/robots/${p.user}` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/repositories` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/repositories/${p.name}/tags` },
  { methods: ['POST'], path: () => '/api/v1/gc' },
  // The web console and the management API it uses.
  { methods: ['GET', 'HEAD'], path: () => '/' },
  { methods: ['GET', 'HEAD'], path: (p) => `/assets/${p.ref}.js` },
  { methods: ['GET', 'POST', 'DELETE'], path: () => '/api/v1/session' },
  { methods: ['GET'], path: () => '/api/v1/status' },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/machineconfig.yaml` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/kbs-resources.json` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/audit` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/gate-preview` },
  { methods: ['POST'], path: (p) => `/api/v1/projects/${p.project}/mirror/run` },
  { methods: ['GET'], path: (p) => `/api/v1/projects/${p.project}/repositories/${p.name}/trust` },
  { methods: ['DELETE'], path: (p) => `/api/v1/projects/${p.project}/repositories/${p.name}/tags/${p.ref}` },
  { methods: ['DELETE'], path: (p) => `/api/v1/projects/${p.project}/repositories/${p.name}/manifests/${p.digest}` },
];

const authorization = fc.oneof(
  fc.constant(AUTH.fuzzer),
  fc.constant(AUTH.fuzzer),
  fc.constant(undefined),
  fc.constantFrom(
    basic('fuzzer', 'wrong'),
    basic('', ''),
    basic('nobody', 'x'),
    'Basic',
    'Basic !!!',
    'Bearer abc',
    'Basic Og==',
    `Basic ${'A'.repeat(5000)}`,
  ),
  printable(40),
);
const rangeHeader = fc.oneof(
  fc.tuple(number, number).map(([a, b]) => `bytes=${a}-${b}`),
  fc.constantFrom('bytes=-0', 'bytes=0-', 'bytes=5-2', 'bytes=0-0,2-3', 'bytes=-99999999999999999999', 'items=0-1', 'bytes=', 'bytes=a-b'),
  printable(30),
);
const contentRange = fc.oneof(
  fc.tuple(number, number).map(([a, b]) => `${a}-${b}`),
  fc.constantFrom('0-0', 'bytes 0-9/10', 'bytes=0-9', '-1-5', '5-', '0-99999999999999999', '10-5'),
  printable(30),
);
const contentType = fc.oneof(
  fc.constantFrom(
    OCI_MANIFEST,
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/json',
    'application/octet-stream',
    'text/plain',
  ),
  printable(40),
);
const headers = fc
  .record(
    {
      authorization,
      range: rangeHeader,
      'content-range': contentRange,
      'content-type': contentType,
      accept: fc.oneof(contentType, fc.constant('*/*')),
      'if-none-match': fc.oneof(
        knownDigest.map((d) => `"${d}"`),
        printable(20),
      ),
    },
    { requiredKeys: [] },
  )
  .map((h) => Object.fromEntries(Object.entries(h).filter((e): e is [string, string] => e[1] !== undefined)));

const query = fc.oneof(
  fc.constant(''),
  fc
    .array(
      fc.tuple(
        fc.constantFrom('digest', 'mount', 'from', 'n', 'last', 'artifactType', 'default'),
        fc.oneof(digest, name, number, printable(20), text),
      ),
      { maxLength: 4 },
    )
    .map((pairs) => (pairs.length ? `?${new URLSearchParams(pairs).toString()}` : '')),
  fc.stringMatching(/^[a-z%=&0-9:;+]{0,30}$/).map((q) => `?${q}`),
);
const bytes = fc.uint8Array({ maxLength: 3000 });
const jsonBody = anyJson.map((v) => new TextEncoder().encode(JSON.stringify(v)));
const manifestLike = fc
  .record(
    {
      schemaVersion: fc.oneof(fc.constant(2), anyJson),
      mediaType: fc.oneof(contentType, text, anyJson),
      config: fc.oneof(fc.record({ mediaType: contentType, digest, size: fc.oneof(fc.integer(), fc.double(), anyJson) }), anyJson),
      layers: fc.oneof(
        fc.array(fc.record({ mediaType: contentType, digest: fc.oneof(knownDigest, digest), size: fc.integer() }), { maxLength: 3 }),
        anyJson,
      ),
      manifests: fc.oneof(
        fc.array(fc.record({ mediaType: contentType, digest: fc.oneof(knownDigest, digest), size: fc.integer() }), { maxLength: 3 }),
        anyJson,
      ),
      subject: fc.oneof(fc.record({ mediaType: contentType, digest: fc.oneof(knownDigest, digest), size: fc.integer() }), anyJson),
      artifactType: fc.oneof(text, anyJson),
      annotations: fc.oneof(fc.dictionary(text, text), anyJson),
    },
    { requiredKeys: [] },
  )
  .map((v) => new TextEncoder().encode(JSON.stringify(v)));
const signatureObject = fc
  .record(
    {
      schemaVersion: fc.oneof(fc.constant(2), anyJson),
      type: fc.oneof(fc.constant('atomic'), anyJson),
      name: fc.oneof(
        knownDigest.map((d) => `${d}@${'0'.repeat(32)}`),
        anyJson,
      ),
      content: fc.oneof(
        bytes.map((b) => Buffer.from(b).toString('base64')),
        printable(40),
        anyJson,
      ),
    },
    { requiredKeys: [] },
  )
  .map((v) => new TextEncoder().encode(JSON.stringify(v)));
// Bytes that start like OpenPGP packets or armor, and are not.
const notOpenpgp = fc.oneof(
  fc
    .tuple(fc.constantFrom(0xa3, 0x90, 0xc4, 0x89, 0xc2, 0xc8, 0x8c, 0xa0, 0xcb), bytes)
    .map(([tag, rest]) => Uint8Array.from([tag, ...rest])),
  bytes.map((b) =>
    new TextEncoder().encode(`-----BEGIN PGP MESSAGE-----\n\n${Buffer.from(b).toString('base64')}\n-----END PGP MESSAGE-----\n`),
  ),
  bytes.map((b) => new TextEncoder().encode(`-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n${Buffer.from(b).toString('latin1')}`)),
  bytes.map((b) =>
    new TextEncoder().encode(`-----BEGIN PUBLIC KEY-----\n${Buffer.from(b).toString('base64')}\n-----END PUBLIC KEY-----\n`),
  ),
  bytes.map((b) =>
    new TextEncoder().encode(
      `-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n${Buffer.from(b).toString('base64')}\n-----END PGP PUBLIC KEY BLOCK-----\n`,
    ),
  ),
  bytes,
);
const body = fc.oneof(bytes, jsonBody, manifestLike, signatureObject, notOpenpgp);

/** Runs a property for at most `numRuns` runs or TIME_LIMIT_MS; logs how far it got; fails with fast-check's report. */
async function check<Ts>(t: { log(...values: unknown[]): void }, property: fc.IAsyncProperty<Ts>, numRuns: number): Promise<void> {
  const details = await fc.check(property, { numRuns, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false, verbose: 1 });
  t.log(`${details.numRuns} runs${details.interrupted ? ' (stopped by the time limit)' : ''}`);
  const report = await fc.asyncDefaultReportMessage(details);
  if (details.failed) throw new Error(report);
}

// --- the properties ------------------------------------------------------------------------------

test.serial('the route templates cover every route in the routes table', (t) => {
  const { layers } = createRegistryRoutes(registry.registry.deps);
  const sample: Parts = {
    name: 'fuzz/app',
    ref: 'v1',
    digest: fuzzImage.manifest.digest,
    id: known.uploadIds[0]!,
    project: 'fuzz',
    user: 'someone',
    number: '1',
    hexHead: fuzzImage.manifest.digest.slice(7),
  };
  for (const layer of layers) {
    t.is(new Set(layer.methods).size, layer.methods.length, `a method twice in ${String(layer.path)}: ${layer.methods.join(',')}`);
    for (const method of layer.methods) {
      // HEAD is answered by a GET route (as the router does for a GET-only route).
      const covers = (methods: readonly string[]): boolean => methods.includes(method) || (method === 'HEAD' && methods.includes('GET'));
      const covered = ROUTES.some((r) => covers(r.methods) && layer.regexp.test(r.path(sample)));
      t.true(covered, `no template for ${method} ${String(layer.path)}`);
    }
  }
  // The router tests every layer's expression on every request: one layer per expression, with
  // all of its methods (server/routes.ts).
  const expressions = layers.map((layer) => layer.regexp.source);
  t.is(new Set(expressions).size, expressions.length, 'a path expression in two router layers');
});

test.serial('malformed paths, headers, queries and bodies on every route: 2xx or a 4xx OCI error, never 5xx', async (t) => {
  const route = fc.integer({ min: 0, max: ROUTES.length - 1 }).chain((i) =>
    fc.record({
      index: fc.constant(i),
      method: fc.oneof(fc.constantFrom(...ROUTES[i]!.methods), fc.constantFrom('OPTIONS', 'PROPFIND', 'PATCH', 'POST')),
    }),
  );
  await check(
    t,
    fc.asyncProperty(route, parts, query, headers, fc.option(body, { nil: undefined }), async ({ index, method }, p, q, h, b) => {
      const url = `${ROUTES[index]!.path(p)}${q}`;
      const answer = await send(method, url, h, b);
      const wrong = problem(answer);
      if (wrong) throw new Error(`${method} ${url} (${JSON.stringify(h)}): ${wrong}`);
    }),
    1000,
  );
  t.pass();
});

test.serial('JSON, bytes and non-OpenPGP signatures to the body-reading endpoints', async (t) => {
  const target = fc.oneof(
    fc.tuple(
      fc.constant('PUT'),
      reference.map((r) => `/v2/fuzz/app/manifests/${r}`),
    ),
    fc.tuple(fc.constant('PUT'), fc.constant(`/extensions/v2/fuzz/app/signatures/${fuzzImage.manifest.digest}`)),
    fc.tuple(
      fc.constant('PUT'),
      fc.nat({ max: 3 }).map((n) => `/sigstore/fuzz/app@sha256=${fuzzImage.manifest.digest.slice(7)}/signature-${n + 1}`),
    ),
    fc.tuple(fc.constant('POST'), fc.constant('/api/v1/projects/fuzz/keys')),
    fc.tuple(fc.constant('POST'), fc.constant('/api/v1/projects')),
    fc.tuple(fc.constant('PATCH'), fc.constant('/api/v1/projects/fuzz')),
    fc.tuple(
      fc.constant('PUT'),
      user.map((u) => `/api/v1/projects/fuzz/members/${u}`),
    ),
    fc.tuple(
      fc.constant('POST'),
      knownDigest.map((d) => `/v2/fuzz/app/blobs/uploads/?digest=${d}`),
    ),
    // The same against the seed project, where all of it must be refused.
    fc.tuple(
      fc.constant('PUT'),
      reference.map((r) => `/v2/seed/app/manifests/${r}`),
    ),
    fc.tuple(fc.constant('PUT'), fc.constant(`/sigstore/seed/app@sha256=${seedImage.manifest.digest.slice(7)}/signature-2`)),
    fc.tuple(fc.constant('PATCH'), fc.constant('/api/v1/projects/seed')),
  );
  const projectPatch = fc
    .record(
      {
        public: anyJson,
        signedOnly: anyJson,
        quotaBytes: fc.oneof(fc.integer(), fc.double(), anyJson),
        role: fc.oneof(fc.constantFrom('guest', 'developer', 'maintainer'), anyJson),
        name: fc.oneof(project, anyJson),
      },
      { requiredKeys: [] },
    )
    .map((v) => new TextEncoder().encode(JSON.stringify(v)));
  await check(
    t,
    fc.asyncProperty(target, fc.oneof(body, projectPatch), contentType, async ([method, url], b, type) => {
      const answer = await send(method, url, { authorization: AUTH.fuzzer, 'content-type': type }, b);
      const wrong = problem(answer);
      if (wrong) throw new Error(`${method} ${url} with ${Buffer.from(b).toString('latin1').slice(0, 200)}: ${wrong}`);
    }),
    600,
  );
  t.pass();
});

test.serial('lying Content-Length and broken framing over raw sockets: no 5xx, no hang', async (t) => {
  const bodyPaths = [
    () => `/v2/fuzz/app/blobs/uploads/${known.uploadIds[0]}`,
    () => `/v2/fuzz/app/blobs/uploads/?digest=${fuzzImage.layers[0]!.digest}`,
    () => '/v2/fuzz/app/manifests/raw',
    () => `/extensions/v2/fuzz/app/signatures/${fuzzImage.manifest.digest}`,
    () => `/sigstore/fuzz/app@sha256=${fuzzImage.manifest.digest.slice(7)}/signature-3`,
    () => '/api/v1/projects/fuzz',
    () => '/api/v1/projects/fuzz/keys',
    () => '/v2/seed/app/manifests/raw',
  ];
  const framing = fc.oneof(
    fc.record({ kind: fc.constant('longer' as const), extra: fc.integer({ min: 1, max: 5000 }) }),
    fc.record({ kind: fc.constant('shorter' as const), extra: fc.integer({ min: 1, max: 50 }) }),
    fc.record({
      kind: fc.constant('invalid' as const),
      value: fc.constantFrom('abc', '-1', '1e3', '99999999999999999999', '', '5, 6', '0x10', '+5', ' 12'),
    }),
    fc.record({ kind: fc.constant('double' as const), extra: fc.integer({ min: 1, max: 5 }) }),
    fc.record({
      kind: fc.constant('chunked' as const),
      junk: fc.constantFrom('zz\r\nabc\r\n0\r\n\r\n', '5\r\nab\r\n', '-1\r\n\r\n', 'ffffffffffffffff\r\nx', '3\r\nabcdef\r\n0\r\n\r\n', ''),
    }),
    fc.record({ kind: fc.constant('both' as const) }),
  );
  const method = fc.constantFrom('PUT', 'PATCH', 'POST');
  await check(
    t,
    fc.asyncProperty(
      fc.nat({ max: bodyPaths.length - 1 }),
      method,
      framing,
      fc.uint8Array({ minLength: 1, maxLength: 400 }),
      async (i, m, f, b) => {
        const target = bodyPaths[i]!();
        const head: Record<string, string> = {
          Host: registry.host,
          Authorization: AUTH.fuzzer,
          'Content-Type': 'application/json',
          Connection: 'close',
        };
        let tail: Buffer = Buffer.from(b);
        let halfClose = false;
        if (f.kind === 'longer') {
          head['Content-Length'] = String(b.length + f.extra);
          halfClose = true;
        } else if (f.kind === 'shorter') {
          head['Content-Length'] = String(Math.max(b.length - f.extra, 0));
        } else if (f.kind === 'invalid') {
          // Some of these parse (" 12" is 12 with optional white space): end the stream so a
          // server rightly waiting for the rest learns that none is coming.
          head['Content-Length'] = f.value;
          halfClose = true;
        } else if (f.kind === 'double') {
          head['Content-Length'] = `${b.length}\r\nContent-Length: ${b.length + f.extra}`;
        } else if (f.kind === 'chunked') {
          head['Transfer-Encoding'] = 'chunked';
          tail = Buffer.from(f.junk, 'latin1');
          halfClose = true;
        } else {
          head['Transfer-Encoding'] = 'chunked';
          head['Content-Length'] = String(b.length);
          tail = Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), Buffer.from(b), Buffer.from('\r\n0\r\n\r\n')]);
        }
        const result = await rawRequest(port, Buffer.concat([Buffer.from(requestHead(m, target, head), 'latin1'), tail]), {
          timeoutMs: RAW_TIMEOUT_MS,
          halfClose,
        });
        if (!result.closed) throw new Error(`${m} ${target} (${JSON.stringify(f)}): the connection hung`);
        for (const response of result.responses) {
          const wrong = problem({ method: m, path: target, status: response.status, body: response.body.toString('utf8') });
          if (wrong) throw new Error(`${m} ${target} (${JSON.stringify(f)}): ${wrong}`);
        }
      },
    ),
    400,
  );
  t.pass();
});

test.serial('CONNECT (the registry taken for a proxy) is answered 405 in the OCI shape, not a silent close', async (t) => {
  for (const target of ['example.com:443', '127.0.0.1:22', '[::1]:80']) {
    const result = await rawRequest(port, requestHead('CONNECT', target, { Host: target }), { timeoutMs: RAW_TIMEOUT_MS });
    t.true(result.closed, `${target}: closed after the answer`);
    t.is(result.responses.length, 1, `${target}: one answer`);
    const [response] = result.responses;
    t.is(response?.status, 405, target);
    t.is(response?.headers['docker-distribution-api-version'], 'registry/2.0');
    t.is((JSON.parse(response?.body.toString('utf8') ?? '{}') as OciErrorBody).errors[0]?.code, 'UNSUPPORTED', target);
  }
});

test.serial('the seeded content is unchanged, and the registry still serves', async (t) => {
  t.deepEqual(await snapshot(), before);
  const health = await fetch(`${registry.url}/readyz`);
  t.is(health.status, 200);
  // The fuzzed project still works end to end.
  const client = createClient(registry.url, { Authorization: AUTH.fuzzer });
  const image = makeImage({ layers: 1 });
  const put = await client.pushImage('fuzz/after', image, 'ok');
  t.is(put.status, 201);
  // The fuzzer is the project's admin, so a fuzzed PATCH may rightly have turned on "only signed
  // pulls": then the unsigned image must be refused by the gate, and served once it is off again.
  const settings = (await (await client.request('/api/v1/projects/fuzz')).json()) as { signedOnly: boolean };
  if (settings.signedOnly) {
    const refused = await client.getManifest('fuzz/after', 'ok');
    t.is(refused.status, 412);
    t.is(((await refused.json()) as OciErrorBody).errors[0]?.code, 'PROJECTPOLICYVIOLATION');
    const off = await client.request('/api/v1/projects/fuzz', {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ signedOnly: false }),
    });
    t.is(off.status, 200);
  }
  const got = await client.getManifest('fuzz/after', 'ok');
  t.is(got.status, 200);
  t.deepEqual(Buffer.from(await got.arrayBuffer()), image.manifest.data);
});
