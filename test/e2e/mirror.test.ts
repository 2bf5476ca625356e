// Mirror projects end to end with the real clients: an upstream Go registry (docker-registry)
// holding images that `skopeo copy --sign-by` pushed, their signatures written to a
// lookaside-staging folder served by a static web server (as Red Hat serves its sigstore). Signet
// mirrors it; with the policy `signet policy` exports (signedBy + remapIdentity), skopeo pulls
// through Signet and accepts the upstream's signatures. A signed-only mirror refuses a signature by
// another key, a corrupted one, and a valid one made for another repository; with the upstream
// stopped, the cached image still pulls. A second upstream that is another Signet hands its
// signatures over through the signature API extension and cosign's `.sig` tags.
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { createSkopeo, type Skopeo } from '../helpers/containers-tools.js';
import { cosignSign, makeCosignKey } from '../helpers/cosign.js';
import { createClient } from '../helpers/oci-client.js';
import { testWithCommands } from '../helpers/env.js';
import { createGpgKey, type GpgKey } from '../helpers/gpg.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { readDirCopy } from '../helpers/layout-reader.js';
import { blobOf, makeImage, sha256, writeOciLayout, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import {
  GO_REGISTRY,
  startCountingProxy,
  startGoRegistry,
  startStaticServer,
  type CountingProxy,
  type GoRegistry,
  type StaticServer,
} from '../helpers/upstream.js';

interface Context {
  work: string;
  staging: string;
  upstream: GoRegistry;
  proxy: CountingProxy;
  lookaside: StaticServer;
  signet: TestRegistry;
  /** A second upstream that is another Signet: signatures through its extension API and cosign tags. */
  upSignet: TestRegistry;
  logs: CapturedLog;
  signer: GpgKey;
  other: GpgKey;
  skopeo: Skopeo;
  /** registries.d pointing skopeo's pushes to the upstream at the staging folder. */
  pushConfig: string;
}
const test = testWithCommands<Context>('mirror e2e', ['skopeo', 'gpg', 'gpgconf', GO_REGISTRY]);
type T = ExecutionContext<Context>;

test.before(async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'signet-e2e-mirror-'));
  t.context.work = work;
  t.context.staging = path.join(work, 'lookaside');
  await mkdir(t.context.staging);
  const settled = await Promise.allSettled([
    startGoRegistry().then(async (u) => {
      t.context.upstream = u;
      t.context.proxy = await startCountingProxy(u.port);
    }),
    startStaticServer(t.context.staging).then((s) => (t.context.lookaside = s)),
    createGpgKey('Upstream Signer', 'upstream@example.com').then((k) => (t.context.signer = k)),
    createGpgKey('Someone Else', 'other@example.com').then((k) => (t.context.other = k)),
    createSkopeo().then((s) => (t.context.skopeo = s)),
    startTestRegistry().then((r) => (t.context.upSignet = r)),
    (async () => {
      t.context.logs = captureLog('info');
      // Tags are asked of the upstream at every pull, so a stopped upstream is noticed at once.
      t.context.signet = await startTestRegistry({
        env: { REGISTRY_PROXY_TAGTTL: '0', REGISTRY_PROXY_TIMEOUT: '5' },
        log: t.context.logs.log,
      });
    })(),
  ]);
  for (const result of settled) if (result.status === 'rejected') throw result.reason;
  const config = path.join(work, 'registries.d');
  await mkdir(config);
  await writeFile(
    path.join(config, 'upstream.yaml'),
    `docker:\n  ${t.context.proxy.host}:\n    lookaside-staging: file://${t.context.staging}\n`,
  );
  t.context.pushConfig = config;
  // The mirror: signed-only, trusting the upstream's key, reading its lookaside.
  await api(t, 'POST', '/api/v1/projects', {
    name: 'redhat',
    mirror: { upstream: t.context.proxy.url, lookaside: t.context.lookaside.url },
  });
  const key = await fetch(`${t.context.signet.url}/api/v1/projects/redhat/keys`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: new Uint8Array(await readFile(t.context.signer.publicKeyFile)),
  });
  t.is(key.status, 201);
  await api(t, 'PATCH', '/api/v1/projects/redhat', { signedOnly: true });
});
test.after.always(async (t) => {
  await t.context.skopeo?.close();
  await t.context.signer?.close();
  await t.context.other?.close();
  await t.context.signet?.close();
  await t.context.upSignet?.close();
  await t.context.lookaside?.close();
  await t.context.proxy?.close();
  await t.context.upstream?.stop();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

async function api(t: T, method: string, urlPath: string, body?: unknown): Promise<Response> {
  const res = await fetch(`${t.context.signet.url}${urlPath}`, {
    method,
    headers: { 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (res.status >= 300) t.fail(`${method} ${urlPath}: ${res.status} ${await res.text()}`);
  return res;
}

let dirs = 0;
async function workDir(t: T, label: string): Promise<string> {
  const dir = path.join(t.context.work, `${label}-${++dirs}`);
  await mkdir(dir);
  return dir;
}

/** `skopeo copy --sign-by` of a new image to the upstream; its signature lands in the lookaside folder. */
async function pushUpstream(t: T, reference: string, signBy: GpgKey | undefined): Promise<Image> {
  const image = makeImage({ layers: 1 });
  const layout = await workDir(t, 'layout');
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  await t.context.skopeo.skopeo(
    [
      'copy',
      '--dest-tls-verify=false',
      ...(signBy ? ['--sign-by', signBy.fingerprint] : []),
      `oci:${layout}:v1`,
      `docker://${t.context.proxy.host}/${reference}`,
    ],
    { env: signBy ? signBy.env(t.context.skopeo.env) : t.context.skopeo.env, registriesD: t.context.pushConfig },
  );
  return image;
}

const hex = (digest: string): string => digest.replace(/^sha256:/, '');
const stagedDir = (t: T, repository: string, digest: string): string => path.join(t.context.staging, `${repository}@sha256=${hex(digest)}`);

/** The policy `signet policy <project>` prints, written to a file. */
async function exportedPolicy(t: T, project: string): Promise<{ file: string; policy: Record<string, unknown> }> {
  const text = await (await api(t, 'GET', `/api/v1/projects/${project}/policy.json`)).text();
  const file = path.join(await workDir(t, 'policy'), 'policy.json');
  await writeFile(file, text);
  return { file, policy: JSON.parse(text) as Record<string, unknown> };
}

async function pullThroughSignet(t: T, reference: string, policy: string): Promise<string> {
  const out = await workDir(t, 'pulled');
  await t.context.skopeo.skopeo(['copy', '--src-tls-verify=false', `docker://${t.context.signet.host}/${reference}`, `dir:${out}`], {
    policy,
  });
  return out;
}

test.serial('skopeo pulls through Signet with the exported remapIdentity policy and accepts the upstream signature', async (t) => {
  const image = await pushUpstream(t, 'ubi8/ubi:8.0', t.context.signer);
  t.true(
    (await readdir(stagedDir(t, 'ubi8/ubi', image.manifest.digest))).includes('signature-1'),
    'skopeo wrote the signature to the staging lookaside',
  );
  const { file, policy } = await exportedPolicy(t, 'redhat');
  const requirement = (policy.transports as { docker: Record<string, { signedIdentity: unknown }[]> }).docker[
    `${t.context.signet.host}/redhat`
  ]![0]!;
  t.deepEqual(requirement.signedIdentity, {
    type: 'remapIdentity',
    prefix: `${t.context.signet.host}/redhat`,
    signedPrefix: t.context.proxy.host,
  });
  const out = await pullThroughSignet(t, 'redhat/ubi8/ubi:8.0', file);
  const copy = await readDirCopy(out);
  t.is(sha256(copy.manifest), image.manifest.digest);
  t.true(copy.blobs.has(image.layers[0]!.digest));
  // The signature skopeo verified came from Signet (the extension API), as the upstream made it.
  const upstreamSignature = await readFile(path.join(stagedDir(t, 'ubi8/ubi', image.manifest.digest), 'signature-1'));
  t.true((await readFile(path.join(out, 'signature-1'))).equals(upstreamSignature));
  // The lookaside of Signet serves it as well.
  const served = await fetch(`${t.context.signet.url}/sigstore/redhat/ubi8/ubi@sha256=${hex(image.manifest.digest)}/signature-1`);
  t.is(served.status, 200);
  t.true(Buffer.from(await served.arrayBuffer()).equals(upstreamSignature));
});

test.serial('a signed-only mirror refuses a wrong key, a corrupted signature and a signature for another repository', async (t) => {
  // Another key.
  const foreign = await pushUpstream(t, 'ubi8/foreign:1', t.context.other);
  // A trusted signature with one byte changed inside.
  const corrupt = await pushUpstream(t, 'ubi8/corrupt:1', t.context.signer);
  const file = path.join(stagedDir(t, 'ubi8/corrupt', corrupt.manifest.digest), 'signature-1');
  const bytes = await readFile(file);
  bytes[bytes.length - 20]! ^= 0x01;
  await writeFile(file, bytes);
  // A valid signature of the same image, made for another repository, copied next to the victim.
  const image = await pushUpstream(t, 'ubi8/signed:1', t.context.signer);
  const layout = await workDir(t, 'victim');
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  await t.context.skopeo.skopeo(['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${t.context.proxy.host}/ubi8/victim:1`]);
  await cp(stagedDir(t, 'ubi8/signed', image.manifest.digest), stagedDir(t, 'ubi8/victim', image.manifest.digest), { recursive: true });

  const cases: [string, RegExp][] = [
    ['ubi8/foreign:1', /signed by a key|not trusted|no trusted signature/i],
    ['ubi8/corrupt:1', /not signed|no trusted signature/],
    ['ubi8/victim:1', /signed for .*ubi8\/signed/],
  ];
  for (const [reference, reason] of cases) {
    const [repository, tag] = reference.split(':') as [string, string];
    const res = await fetch(`${t.context.signet.url}/v2/redhat/${repository}/manifests/${tag}`, {
      headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    t.is(res.status, 412, reference);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    t.is(body.errors[0]?.code, 'PROJECTPOLICYVIOLATION');
    t.regex(body.errors[0]?.message ?? '', reason, reference);
  }
  t.truthy(foreign);
  // The gate's decision is the client's: with the gate open, skopeo and the exported policy
  // refuse each of them by themselves.
  const { file: policy } = await exportedPolicy(t, 'redhat');
  await api(t, 'PATCH', '/api/v1/projects/redhat', { signedOnly: false });
  try {
    for (const [reference] of cases) {
      const out = await workDir(t, 'refused');
      const failed = await t.context.skopeo.skopeoFails(
        ['copy', '--src-tls-verify=false', `docker://${t.context.signet.host}/redhat/${reference}`, `dir:${out}`],
        { policy },
      );
      t.regex(failed.stderr, /Source image rejected/, reference);
    }
  } finally {
    await api(t, 'PATCH', '/api/v1/projects/redhat', { signedOnly: true });
  }
});

test.serial('with the upstream stopped, the cached image still pulls and the log says so', async (t) => {
  const own = await startCountingProxy(t.context.upstream.port);
  try {
    // A second mirror of the same upstream through another address: signatures name the first,
    // which the signed prefix says.
    await api(t, 'POST', '/api/v1/projects', {
      name: 'cache',
      mirror: { upstream: own.url, lookaside: t.context.lookaside.url, signedPrefix: t.context.proxy.host },
    });
    const key = await fetch(`${t.context.signet.url}/api/v1/projects/cache/keys`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: new Uint8Array(await readFile(t.context.signer.publicKeyFile)),
    });
    t.is(key.status, 201);
    await api(t, 'PATCH', '/api/v1/projects/cache', { signedOnly: true });
    const image = await pushUpstream(t, 'ubi9/ubi:9.1', t.context.signer);
    const { file } = await exportedPolicy(t, 'cache');
    await pullThroughSignet(t, 'cache/ubi9/ubi:9.1', file);
    await own.setDown(true);
    const out = await pullThroughSignet(t, 'cache/ubi9/ubi:9.1', file);
    t.is(sha256((await readDirCopy(out)).manifest), image.manifest.digest);
    t.true(t.context.logs.withMessage('upstream unreachable: serving the cached manifest').some((l) => l.repository === 'cache/ubi9/ubi'));
  } finally {
    await own.close();
  }
});

test.serial('a Signet upstream: signatures come through its extension API and cosign .sig tags', async (t) => {
  const up = t.context.upSignet;
  // A simple signature stored in the upstream Signet through its extension (skopeo --sign-by).
  const image = makeImage({ layers: 1 });
  const layout = await workDir(t, 'layout');
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  await t.context.skopeo.skopeo(
    ['copy', '--dest-tls-verify=false', '--sign-by', t.context.signer.fingerprint, `oci:${layout}:v1`, `docker://${up.host}/up/app:v1`],
    { env: t.context.signer.env(t.context.skopeo.env) },
  );
  // A cosign signature at the upstream's .sig tag naming the tag it was pushed under (as
  // containers/image's own sigstore signing writes), and one naming the repository only (as
  // `cosign sign` writes).
  const cosignKey = makeCosignKey();
  const cosigned = makeImage({ layers: 1 });
  const upstream = createClient(up.url);
  await upstream.pushImage('up/cos', cosigned, 'v1');
  const signature = cosignSign(cosignKey, cosigned.manifest.digest, `${up.host}/up/cos:v1`);
  for (const blob of [signature.payload, signature.config]) t.is((await upstream.pushBlob('up/cos', blob)).status, 201);
  t.is((await upstream.pushManifest('up/cos', signature.tag, signature.manifest)).status, 201);
  const bare = makeImage({ layers: 1 });
  await upstream.pushImage('up/bare', bare, 'v1');
  const bareSignature = cosignSign(cosignKey, bare.manifest.digest, `${up.host}/up/bare`);
  for (const blob of [bareSignature.payload, bareSignature.config]) t.is((await upstream.pushBlob('up/bare', blob)).status, 201);
  t.is((await upstream.pushManifest('up/bare', bareSignature.tag, bareSignature.manifest)).status, 201);

  // The mirror of the upstream's namespace `up`: `sig/<path>` there is `up/<path>`.
  await api(t, 'POST', '/api/v1/projects', { name: 'sig', mirror: { upstream: `${up.url}/up` } });
  for (const key of [await readFile(t.context.signer.publicKeyFile), Buffer.from(cosignKey.publicPem)]) {
    const res = await fetch(`${t.context.signet.url}/api/v1/projects/sig/keys`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream' },
      body: new Uint8Array(key),
    });
    t.is(res.status, 201);
  }
  await api(t, 'PATCH', '/api/v1/projects/sig', { signedOnly: true });
  const { file, policy } = await exportedPolicy(t, 'sig');
  const requirement = (policy.transports as { docker: Record<string, { signedIdentity: unknown }[]> }).docker[
    `${t.context.signet.host}/sig`
  ]![0]!;
  t.deepEqual(requirement.signedIdentity, { type: 'remapIdentity', prefix: `${t.context.signet.host}/sig`, signedPrefix: `${up.host}/up` });
  const out = await pullThroughSignet(t, 'sig/app:v1', file);
  t.is(sha256((await readDirCopy(out)).manifest), image.manifest.digest);

  // cosign: the .sig manifest and its payload were copied. remapIdentity matches as
  // matchRepoDigestOrExact after the remapping, exactly as containers/image decides with the
  // exported policy (signature/policy_reference_match.go): the signature naming tag v1 opens a
  // pull of that tag and of the digest; one naming the repository only opens nothing
  // (IsNameOnly(signature) -> false), by tag or by digest.
  const signet = createClient(t.context.signet.url);
  t.is((await signet.getManifest('sig/cos', 'v1')).status, 200);
  t.is((await signet.getManifest('sig/cos', cosigned.manifest.digest)).status, 200);
  t.is((await signet.getManifest('sig/cos', signature.tag)).status, 200);
  for (const reference of ['v1', bare.manifest.digest]) {
    const refused = await signet.getManifest('sig/bare', reference);
    t.is(refused.status, 412, reference);
    t.regex(((await refused.json()) as { errors: { message: string }[] }).errors[0]?.message ?? '', /repository only|up\/bare/, reference);
  }

  // A cosign signature attached as an OCI 1.1 referrer (no .sig tag): copied through the
  // upstream's referrers API, so the gate finds it.
  const referred = makeImage({ layers: 1 });
  await upstream.pushImage('up/ref', referred, 'v1');
  const plain = cosignSign(cosignKey, referred.manifest.digest, `${up.host}/up/ref:v1`);
  const body = JSON.parse(plain.manifest.data.toString()) as Record<string, unknown>;
  const referrer = blobOf(
    Buffer.from(
      JSON.stringify({
        ...body,
        artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
        subject: { mediaType: referred.manifest.mediaType, digest: referred.manifest.digest, size: referred.manifest.size },
      }),
    ),
    referred.manifest.mediaType,
  );
  for (const blob of [plain.payload, plain.config]) t.is((await upstream.pushBlob('up/ref', blob)).status, 201);
  t.is((await upstream.pushManifest('up/ref', referrer.digest, referrer)).status, 201);
  t.is((await signet.getManifest('sig/ref', referred.manifest.digest)).status, 200);
  t.is((await signet.getManifest('sig/ref', referrer.digest)).status, 200, 'the referrer is held here');
});
