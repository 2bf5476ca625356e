// A trusted key's expiry is no write: nothing drops the gate's cached decisions then. A signature
// by a key that has expired must stop opening the gate when the key expires, as containers/image
// judges validity at each pull, not up to REGISTRY_CACHE_TTL later (found by adversarial testing:
// 3 s past the expiry with the default TTL of 5 s).
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import test from 'ava';
import { testWithCommands } from '../helpers/env.js';
import { createGpgKey } from '../helpers/gpg.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry } from '../helpers/registry.js';
import type { CommandError } from '../helpers/run.js';
import { makeKey, payload, sign } from '../helpers/signing.js';

const LIFETIME_S = 4;

test("a decision that a key allowed is not served from the cache past the key's expiry", async (t) => {
  // A TTL far longer than the key's life: the cache alone would keep the decision a minute.
  const registry = await startTestRegistry({ env: { REGISTRY_CACHE_TTL: '60' } });
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const key = await makeKey({ name: 'Short-lived', expiresInSeconds: LIFETIME_S });
  const expiresAt = ((await key.publicKey.getExpirationTime()) as Date).getTime();

  const api = (path: string, method: string, body: BodyInit) => fetch(`${registry.url}/api/v1/projects${path}`, { method, body });
  t.is((await api('', 'POST', JSON.stringify({ name: 'short' }))).status, 201);
  t.is((await api('/short/keys', 'POST', new Uint8Array(key.publicBinary))).status, 201);
  t.is((await api('/short', 'PATCH', JSON.stringify({ signedOnly: true }))).status, 200);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('short/app', image, 'v1')).status, 201);
  const signature = await sign(key, payload(image.manifest.digest, `${registry.host}/short/app:v1`));
  const put = await client.request(`/extensions/v2/short/app/signatures/${image.manifest.digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${image.manifest.digest}@${randomBytes(16).toString('hex')}`,
      type: 'atomic',
      content: Buffer.from(signature).toString('base64'),
    }),
  });
  t.is(put.status, 201);

  t.true(Date.now() < expiresAt - 500, 'the set-up took less than the key lives');
  t.is((await client.getManifest('short/app', 'v1')).status, 200, 'allowed, and the decision cached');
  await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 200));
  const after = await client.getManifest('short/app', 'v1');
  t.is(after.status, 412, 'refused once the key expired');
  t.regex(((await after.json()) as { errors: { message: string }[] }).errors[0]?.message ?? '', /expired/);
});

// A signature's own expiry (gpg --default-sig-expire, or default-sig-expire in the gpg.conf that
// skopeo --sign-by signs through) is no write either. gpg reports such a signature as EXPSIG, gpgme
// as SIG_EXPIRED, and containers/image refuses it ("Invalid GPG signature"): it must stop opening
// the gate when it expires, not up to REGISTRY_CACHE_TTL later.
/** Long enough for gpg to start its agent and the signature to be stored on a busy machine. */
const SIGNATURE_LIFETIME_S = 8;
const withGpg = testWithCommands('signature expiry and the gate cache', ['gpg', 'gpgconf']);

withGpg("a decision that a signature allowed is not served from the cache past the signature's own expiry", async (t) => {
  const registry = await startTestRegistry({ env: { REGISTRY_CACHE_TTL: '60' } });
  t.teardown(() => registry.close());
  const key = await createGpgKey('Expiring Signatures', 'expiring@example.com');
  t.teardown(() => key.close());
  const client = createClient(registry.url);
  const api = (path: string, method: string, body: BodyInit) => fetch(`${registry.url}/api/v1/projects${path}`, { method, body });
  t.is((await api('', 'POST', JSON.stringify({ name: 'brief' }))).status, 201);
  t.is((await api('/brief/keys', 'POST', new Uint8Array(await readFile(key.publicKeyFile)))).status, 201);
  t.is((await api('/brief', 'PATCH', JSON.stringify({ signedOnly: true }))).status, 200);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('brief/app', image, 'v1')).status, 201);

  const payloadFile = path.join(key.home, 'payload.json');
  const signatureFile = path.join(key.home, 'signature.gpg');
  await writeFile(payloadFile, payload(image.manifest.digest, `${registry.host}/brief/app:v1`));
  await key.gpg(['--default-sig-expire', `seconds=${SIGNATURE_LIFETIME_S}`, '--output', signatureFile, '--sign', payloadFile]);
  // VALIDSIG <fingerprint> <date> <created> <expires> ...: gpg's own reading of the expiry.
  const valid = /VALIDSIG \S+ \S+ (\d+) (\d+)/.exec((await key.gpg(['--status-fd', '1', '--verify', signatureFile])).stdout);
  const expiresAt = Number(valid?.[2]) * 1000;
  t.true(expiresAt > 0, 'gpg made a signature that expires');
  const put = await client.request(`/extensions/v2/brief/app/signatures/${image.manifest.digest}`, {
    method: 'PUT',
    body: JSON.stringify({
      schemaVersion: 2,
      name: `${image.manifest.digest}@${randomBytes(16).toString('hex')}`,
      type: 'atomic',
      content: (await readFile(signatureFile)).toString('base64'),
    }),
  });
  t.is(put.status, 201);

  t.true(Date.now() < expiresAt - 500, 'the set-up took less than the signature lives');
  t.is((await client.getManifest('brief/app', 'v1')).status, 200, 'allowed, and the decision cached');
  await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 200));
  const expired = await key.gpg(['--status-fd', '1', '--verify', signatureFile]).catch((err: CommandError) => err);
  t.regex(expired.stdout, /EXPSIG/, 'gpg itself calls it expired now');
  const after = await client.getManifest('brief/app', 'v1');
  t.is(after.status, 412, 'refused once the signature expired');
  t.regex(((await after.json()) as { errors: { message: string }[] }).errors[0]?.message ?? '', /expired/);
});
