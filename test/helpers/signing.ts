// Simple signatures made with openpgp.js in the test: keys, payloads and signed messages.
import * as openpgp from 'openpgp';

export interface TestKey {
  privateKey: openpgp.PrivateKey;
  publicKey: openpgp.PublicKey;
  /** `gpg --export` form. */
  publicBinary: Uint8Array;
  fingerprint: string;
}

export async function makeKey(options: { name?: string; expiresInSeconds?: number; date?: Date } = {}): Promise<TestKey> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    userIDs: [{ name: options.name ?? 'Signet Test', email: 'test@example.com' }],
    format: 'object',
    ...(options.expiresInSeconds ? { keyExpirationTime: options.expiresInSeconds } : {}),
    ...(options.date ? { date: options.date } : {}),
  });
  return { privateKey, publicKey, publicBinary: publicKey.write(), fingerprint: publicKey.getFingerprint() };
}

export function payload(digest: string, reference: string, extra: { critical?: object; optional?: object } = {}): Uint8Array {
  return new TextEncoder().encode(
    JSON.stringify({
      critical: {
        type: 'atomic container signature',
        image: { 'docker-manifest-digest': digest },
        identity: { 'docker-reference': reference },
        ...extra.critical,
      },
      optional: { creator: 'signet test', timestamp: Math.floor(Date.now() / 1000), ...extra.optional },
    }),
  );
}

export async function sign(
  key: TestKey,
  data: Uint8Array,
  options: { armor?: boolean; date?: Date; subkey?: boolean } = {},
): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: data });
  const signingKeyIDs = options.subkey
    ? [
        key.privateKey
          .getSubkeys()
          .find((k) => k.getAlgorithmInfo().algorithm !== 'ecdh')
          ?.getKeyID(),
      ].filter((x): x is openpgp.KeyID => !!x)
    : undefined;
  const common = {
    message,
    signingKeys: key.privateKey,
    ...(options.date ? { date: options.date } : {}),
    ...(signingKeyIDs ? { signingKeyIDs } : {}),
  };
  if (options.armor) return new TextEncoder().encode(await openpgp.sign({ ...common, format: 'armored' }));
  return openpgp.sign({ ...common, format: 'binary' });
}

function testKeyOf(privateKey: openpgp.PrivateKey): TestKey {
  const publicKey = privateKey.toPublic();
  return { privateKey, publicKey, publicBinary: publicKey.write(), fingerprint: publicKey.getFingerprint() };
}

/**
 * A key with a signing subkey (as `gpg --quick-add-key … sign` makes), created at `date` (default
 * now) and expiring `expiresInSeconds` after it when given.
 */
export async function makeKeyWithSigningSubkey(options: { date?: Date; expiresInSeconds?: number } = {}): Promise<TestKey> {
  const key = await makeKey({ name: 'Subkey Signer', ...(options.date ? { date: options.date } : {}) });
  const withSub = await key.privateKey.addSubkey({
    sign: true,
    type: 'ecc',
    ...(options.date ? { date: options.date } : {}),
    ...(options.expiresInSeconds ? { keyExpirationTime: options.expiresInSeconds } : {}),
  });
  return testKeyOf(withSub);
}

/** The same key with its signing subkey revoked (what `gpg --edit-key … revkey` then `--export` gives). */
export async function revokeSigningSubkey(key: TestKey): Promise<TestKey> {
  const privateKey = await openpgp.readPrivateKey({ binaryKey: key.privateKey.write() });
  const index = privateKey.subkeys.findIndex((k) => k.getAlgorithmInfo().algorithm !== 'ecdh');
  privateKey.subkeys[index] = await privateKey.subkeys[index]!.revoke(privateKey.keyPacket as openpgp.SecretKeyPacket);
  return testKeyOf(privateKey);
}
