// A trusted key's expiry is no write: nothing drops the gate's cached decisions then. A signature
// by a key that has expired must stop opening the gate when the key expires, as containers/image
// judges validity at each pull, not up to REGISTRY_CACHE_TTL later (found by adversarial testing:
// 3 s past the expiry with the default TTL of 5 s).
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { testWithCommands } from '../helpers/env.js';
import { createGpgKey } from '../helpers/gpg.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import type { CommandError } from '../helpers/run.js';
import { makeKey, payload, sign, type TestKey } from '../helpers/signing.js';

const LIFETIME_S = 4;

type Client = ReturnType<typeof createClient>;

/**
 * A registry whose cache alone would keep a decision a minute (far longer than anything here
 * lives), with a signed-only project trusting `publicKey` (asked for once the registry is up) and
 * an image pushed as `<project>/app:v1`.
 */
async function signedOnlyImage(
  t: ExecutionContext,
  project: string,
  publicKey: () => Promise<Uint8Array>,
): Promise<{ registry: TestRegistry; client: Client; image: Image }> {
  const registry = await startTestRegistry({ env: { REGISTRY_CACHE_TTL: '60' } });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const api = (path: string, method: string, body: BodyInit) => fetch(`${registry.url}/api/v1/projects${path}`, { method, body });
  t.is((await api('', 'POST', JSON.stringify({ name: project }))).status, 201);
  t.is((await api(`/${project}/keys`, 'POST', new Uint8Array(await publicKey()))).status, 201);
  t.is((await api(`/${project}`, 'PATCH', JSON.stringify({ signedOnly: true }))).status, 200);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage(`${project}/app`, image, 'v1')).status, 201);
  return { registry, client, image };
}

/** Stores a simple signature of the image through the signature extension. */
async function storeSignature(t: ExecutionContext, client: Client, repository: string, image: Image, signature: Uint8Array): Promise<void> {
  const put = await client.request(`/extensions/v2/${repository}/signatures/${image.manifest.digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${image.manifest.digest}@${randomBytes(16).toString('hex')}`,
      type: 'atomic',
      content: Buffer.from(signature).toString('base64'),
    }),
  });
  t.is(put.status, 201);
}

/** `repository:v1` is allowed (and the decision cached) before `expiresAt`, and refused for an expiry after it. */
async function allowedUntil(t: ExecutionContext, client: Client, repository: string, expiresAt: number, what: string): Promise<void> {
  t.true(Date.now() < expiresAt - 500, `the set-up took less than the ${what} lives`);
  t.is((await client.getManifest(repository, 'v1')).status, 200, 'allowed, and the decision cached');
  await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 200));
  const after = await client.getManifest(repository, 'v1');
  t.is(after.status, 412, `refused once the ${what} expired`);
  t.regex(((await after.json()) as { errors: { message: string }[] }).errors[0]?.message ?? '', /expired/);
}

test("a decision that a key allowed is not served from the cache past the key's expiry", async (t) => {
  // Made once the registry is up, as its life is counted from then.
  let key: TestKey | undefined;
  const { registry, client, image } = await signedOnlyImage(t, 'short', async () => {
    key = await makeKey({ name: 'Short-lived', expiresInSeconds: LIFETIME_S });
    return key.publicBinary;
  });
  const expiresAt = ((await key!.publicKey.getExpirationTime()) as Date).getTime();
  await storeSignature(t, client, 'short/app', image, await sign(key!, payload(image.manifest.digest, `${registry.host}/short/app:v1`)));
  await allowedUntil(t, client, 'short/app', expiresAt, 'key');
});

// A signature's own expiry (gpg --default-sig-expire, or default-sig-expire in the gpg.conf that
// skopeo --sign-by signs through) is no write either. gpg reports such a signature as EXPSIG, gpgme
// as SIG_EXPIRED, and containers/image refuses it ("Invalid GPG signature"): it must stop opening
// the gate when it expires, not up to REGISTRY_CACHE_TTL later.
/** Long enough for gpg to start its agent and the signature to be stored on a busy machine. */
const SIGNATURE_LIFETIME_S = 8;
const withGpg = testWithCommands('signature expiry and the gate cache', ['gpg', 'gpgconf']);

withGpg("a decision that a signature allowed is not served from the cache past the signature's own expiry", async (t) => {
  const key = await createGpgKey('Expiring Signatures', 'expiring@example.com');
  t.teardown(() => key.close());
  const { registry, client, image } = await signedOnlyImage(t, 'brief', () => readFile(key.publicKeyFile));

  const payloadFile = path.join(key.home, 'payload.json');
  const signatureFile = path.join(key.home, 'signature.gpg');
  await writeFile(payloadFile, payload(image.manifest.digest, `${registry.host}/brief/app:v1`));
  await key.gpg(['--default-sig-expire', `seconds=${SIGNATURE_LIFETIME_S}`, '--output', signatureFile, '--sign', payloadFile]);
  // VALIDSIG <fingerprint> <date> <created> <expires> ...: gpg's own reading of the expiry.
  const valid = /VALIDSIG \S+ \S+ (\d+) (\d+)/.exec((await key.gpg(['--status-fd', '1', '--verify', signatureFile])).stdout);
  const expiresAt = Number(valid?.[2]) * 1000;
  t.true(expiresAt > 0, 'gpg made a signature that expires');
  await storeSignature(t, client, 'brief/app', image, await readFile(signatureFile));

  await allowedUntil(t, client, 'brief/app', expiresAt, 'signature');
  const expired = await key.gpg(['--status-fd', '1', '--verify', signatureFile]).catch((err: CommandError) => err);
  t.regex(expired.stdout, /EXPSIG/, 'gpg itself calls it expired now');
});
