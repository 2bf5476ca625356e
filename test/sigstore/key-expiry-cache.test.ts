// A trusted key's expiry is no write: nothing drops the gate's cached decisions then. A signature
// by a key that has expired must stop opening the gate when the key expires, as containers/image
// judges validity at each pull, not up to REGISTRY_CACHE_TTL later (found by adversarial testing:
// 3 s past the expiry with the default TTL of 5 s).
import { randomBytes } from 'node:crypto';
import test from 'ava';
import { createClient } from '../helpers/oci-client.js';
import { makeImage } from '../helpers/oci-layout.js';
import { startTestRegistry } from '../helpers/registry.js';
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
