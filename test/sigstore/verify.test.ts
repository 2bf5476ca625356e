// Parsing and verification of simple signatures, with keys and signatures made by openpgp.js.
import test from 'ava';
import * as openpgp from 'openpgp';
import { readSignedMessage, verifySignedMessage, type TrustedKey } from '../../sigstore/openpgp-signature.js';
import { parsePayload, SignatureFormatError } from '../../sigstore/payload.js';
import { parseStrictJson } from '../../sigstore/strict-json.js';
import { makeKey, makeKeyWithSigningSubkey, payload, sign } from '../helpers/signing.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;
const REF = 'registry.example.com:5000/team/app:v1';
const trust = (key: { publicKey: openpgp.PublicKey; fingerprint: string }): TrustedKey[] => [
  { fingerprint: key.fingerprint, key: key.publicKey },
];

test('a good signature verifies and yields its payload and signer', async (t) => {
  const key = await makeKey();
  const signed = await readSignedMessage(await sign(key, payload(DIGEST, REF)));
  t.is(signed.signerFingerprint, key.fingerprint);
  t.is(signed.signerKeyId, key.publicKey.getKeyID().toHex());
  const result = await verifySignedMessage(signed, trust(key));
  t.true(result.verified);
  const parsed = parsePayload(signed.untrustedPayload);
  t.is(parsed.manifestDigest, DIGEST);
  t.deepEqual(parsed.reference, { host: 'registry.example.com:5000', repository: 'team/app', tag: 'v1' });
});

test('a signature by another key is not trusted', async (t) => {
  const [signer, other] = await Promise.all([makeKey(), makeKey()]);
  const signed = await readSignedMessage(await sign(signer, payload(DIGEST, REF)));
  const result = await verifySignedMessage(signed, trust(other));
  t.false(result.verified);
  t.regex(result.verified ? '' : result.reason, /not trusted/);
});

test('a tampered payload does not verify', async (t) => {
  const key = await makeKey();
  const bytes = Buffer.from(await sign(key, payload(DIGEST, REF)));
  // Flip a byte of the literal data (the digest text) without breaking the packet structure.
  const at = bytes.indexOf(Buffer.from('abab'));
  t.true(at > 0);
  bytes[at] = 'c'.charCodeAt(0);
  const signed = await readSignedMessage(bytes);
  const result = await verifySignedMessage(signed, trust(key));
  t.false(result.verified);
});

test('a signature by an expired key is refused', async (t) => {
  const past = new Date(Date.now() - 10 * 24 * 3600 * 1000);
  const key = await makeKey({ date: past, expiresInSeconds: 24 * 3600 });
  const signed = await readSignedMessage(await sign(key, payload(DIGEST, REF), { date: new Date(past.getTime() + 3600_000) }));
  const result = await verifySignedMessage(signed, trust(key));
  t.false(result.verified);
});

test('a signature by a signing subkey of a trusted primary key verifies', async (t) => {
  const key = await makeKeyWithSigningSubkey();
  const signed = await readSignedMessage(await sign(key, payload(DIGEST, REF), { subkey: true }));
  t.not(signed.signerKeyId, key.publicKey.getKeyID().toHex(), 'made by the subkey');
  const result = await verifySignedMessage(signed, trust(key));
  t.true(result.verified);
  t.is(result.verified ? result.fingerprint : '', key.fingerprint);
});

test('armored input is converted to the binary form; clearsigned and detached input is refused', async (t) => {
  const key = await makeKey();
  const data = payload(DIGEST, REF);
  const armored = await readSignedMessage(await sign(key, data, { armor: true }));
  t.not(armored.binary[0], '-'.charCodeAt(0));
  t.true((await verifySignedMessage(armored, trust(key))).verified);

  const clear = await openpgp.sign({ message: await openpgp.createCleartextMessage({ text: 'x' }), signingKeys: key.privateKey });
  await t.throwsAsync(readSignedMessage(new TextEncoder().encode(clear)), { instanceOf: SignatureFormatError, message: /clearsigned/ });
  const detached = await openpgp.sign({
    message: await openpgp.createMessage({ binary: data }),
    signingKeys: key.privateKey,
    detached: true,
    format: 'binary',
  });
  await t.throwsAsync(readSignedMessage(detached), { instanceOf: SignatureFormatError });
  const detachedArmored = await openpgp.sign({
    message: await openpgp.createMessage({ binary: data }),
    signingKeys: key.privateKey,
    detached: true,
  });
  await t.throwsAsync(readSignedMessage(new TextEncoder().encode(detachedArmored)), {
    instanceOf: SignatureFormatError,
    message: /detached/,
  });
  await t.throwsAsync(readSignedMessage(new TextEncoder().encode('not a signature at all')), { instanceOf: SignatureFormatError });
});

test('payloads are parsed strictly, as containers/image does', (t) => {
  const ok = payload(DIGEST, REF);
  t.notThrows(() => parsePayload(ok));
  const bad: [string, Uint8Array][] = [
    ['unknown critical field', payload(DIGEST, REF, { critical: { extra: 1 } })],
    ['wrong type', payload(DIGEST, REF, { critical: { type: 'cosign container image signature' } })],
    ['sha512 digest', payload(`sha512:${'a'.repeat(128)}`, REF)],
    ['name-only reference', payload(DIGEST, 'registry.example.com/team/app')],
    ['invalid reference', payload(DIGEST, 'Not A Reference')],
    ['non-integer timestamp', payload(DIGEST, REF, { optional: { timestamp: 1.5 } })],
    ['creator not a string', payload(DIGEST, REF, { optional: { creator: 7 } })],
    [
      'duplicate key',
      new TextEncoder().encode(
        `{"critical":{"type":"atomic container signature","type":"x","image":{"docker-manifest-digest":"${DIGEST}"},"identity":{"docker-reference":"${REF}"}},"optional":{}}`,
      ),
    ],
    [
      'missing optional',
      new TextEncoder().encode(
        `{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"${DIGEST}"},"identity":{"docker-reference":"${REF}"}}}`,
      ),
    ],
    ['not json', new TextEncoder().encode('{')],
  ];
  for (const [what, bytes] of bad) t.throws(() => parsePayload(bytes), { instanceOf: SignatureFormatError }, what);
  // Unknown optional fields are ignored.
  t.notThrows(() => parsePayload(payload(DIGEST, REF, { optional: { 'some.tool': { x: 1 } } })));
  // Digest references are fine.
  t.notThrows(() => parsePayload(payload(DIGEST, `registry.example.com/team/app@${DIGEST}`)));
});

test('strict JSON refuses duplicate keys at any depth and trailing data', (t) => {
  t.deepEqual(parseStrictJson('{"a":[1,{"b":"\\"x"}],"c":null}'), { a: [1, { b: '"x' }], c: null });
  t.throws(() => parseStrictJson('{"a":{"b":1,"b":2}}'));
  t.throws(() => parseStrictJson('{"a":1} x'));
  t.throws(() => parseStrictJson('{"__proto__":1,"__proto__":2}'));
});
