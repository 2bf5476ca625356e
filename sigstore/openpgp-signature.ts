// Simple signatures as OpenPGP signed messages: normalising what clients upload to the binary
// form the lookaside must serve, reading who signed, and verifying against trusted keys.
//
// - Stored and served bytes are a binary signed message (what `gpg --sign` writes). skopeo
//   rejects armored and clearsigned signatures on the lookaside, so armored uploads are converted
//   to binary; clearsigned and detached signatures are refused.
// - Verification follows the client: the key (a trusted primary or a subkey of one; expired and
//   revoked keys refused) first, then the payload.
import type * as openpgp from 'openpgp';
import { SignatureFormatError } from './payload.js';

/**
 * openpgp.js is loaded when a signature or key is first read, not at start-up: loaded, it holds
 * 5-10 MB of the server's resident memory that a registry without signatures never needs (RSS
 * after start 90-95 MB with it, 85-89 without; peak RSS during the bench's 1 GiB push 138-147 MB
 * with it, against a 150 MB target, and 129-132 MB without).
 */
let loaded: Promise<typeof openpgp> | undefined;
const openpgpModule = (): Promise<typeof openpgp> => (loaded ??= import('openpgp'));

export interface SignedMessage {
  /** The binary OpenPGP message, as stored and served. */
  binary: Buffer;
  /** The signed payload bytes (not yet trusted). */
  untrustedPayload: Uint8Array;
  /** Key ID (16 hex) of the key that made the signature. */
  signerKeyId: string;
  /** Fingerprint of the signing key when the signature names it (gpg and openpgp.js do). */
  signerFingerprint?: string;
  created: Date;
}

const ARMOR_MESSAGE = '-----BEGIN PGP MESSAGE-----';
const ARMOR_CLEARSIGN = '-----BEGIN PGP SIGNED MESSAGE-----';
const ARMOR_SIGNATURE = '-----BEGIN PGP SIGNATURE-----';

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

async function readBinary(untrusted: Uint8Array): Promise<Buffer> {
  const head = Buffer.from(untrusted.subarray(0, 64)).toString('latin1').trimStart();
  if (head.startsWith(ARMOR_CLEARSIGN)) {
    throw new SignatureFormatError(
      'clearsigned signatures cannot be served to clients reading the lookaside; sign with skopeo --sign-by or gpg --sign',
    );
  }
  if (head.startsWith(ARMOR_SIGNATURE)) {
    throw new SignatureFormatError('detached signatures are not simple signatures; sign with skopeo --sign-by or gpg --sign');
  }
  if (head.startsWith(ARMOR_MESSAGE)) {
    const pgp = await openpgpModule();
    try {
      const { data, type } = await pgp.unarmor(Buffer.from(untrusted).toString('utf8'));
      if (type !== pgp.enums.armor.message) throw new Error('not an armored message');
      // Not streamed: openpgp returns the whole array for a string input.
      if (!(data instanceof Uint8Array)) throw new Error('unexpected streamed armor');
      return Buffer.from(data);
    } catch (err) {
      throw new SignatureFormatError(`not an OpenPGP message: ${(err as Error).message}`);
    }
  }
  return Buffer.from(untrusted);
}

/** Parses an uploaded signature; throws SignatureFormatError for anything clients would reject. */
export async function readSignedMessage(untrusted: Uint8Array): Promise<SignedMessage> {
  const pgp = await openpgpModule();
  const binary = await readBinary(untrusted);
  let message: openpgp.Message<Uint8Array>;
  try {
    message = await pgp.readMessage({ binaryMessage: binary });
  } catch (err) {
    throw new SignatureFormatError(`not an OpenPGP message: ${(err as Error).message}`);
  }
  let result: openpgp.VerifyMessageResult<Uint8Array>;
  try {
    result = await pgp.verify({ message, verificationKeys: [], expectSigned: false, format: 'binary' });
  } catch (err) {
    throw new SignatureFormatError(`unreadable OpenPGP message: ${(err as Error).message}`);
  }
  if (result.signatures.length !== 1) {
    throw new SignatureFormatError(`a simple signature carries exactly one signature, this carries ${result.signatures.length}`);
  }
  const data = result.data;
  if (!(data instanceof Uint8Array) || data.length === 0) {
    throw new SignatureFormatError('the message carries no signed payload (a detached signature?)');
  }
  const entry = result.signatures[0]!;
  // Swallow the expected "no key" rejection of this key-less pass.
  entry.verified.catch(() => undefined);
  const packet = (await entry.signature).packets[0];
  if (!packet) throw new SignatureFormatError('the message carries no signature packet');
  return {
    binary,
    untrustedPayload: data,
    signerKeyId: entry.keyID.toHex(),
    ...(packet.issuerFingerprint ? { signerFingerprint: hex(packet.issuerFingerprint) } : {}),
    created: packet.created ?? new Date(0),
  };
}

export interface TrustedKey {
  /** Primary key fingerprint (hex, lower case). */
  fingerprint: string;
  key: openpgp.PublicKey;
}

export type Verification =
  | { verified: true; fingerprint: string; payload: Uint8Array }
  | { verified: false; reason: string };

/**
 * Verifies the signature with whichever trusted key (primary or subkey) made it. Expired and
 * revoked keys fail, as they do in containers/image.
 */
export async function verifySignedMessage(
  signed: SignedMessage,
  trusted: TrustedKey[],
  now: Date = new Date(),
): Promise<Verification> {
  const pgp = await openpgpModule();
  const candidates = trusted.filter((t) => t.key.getKeyIDs().some((id) => id.toHex() === signed.signerKeyId));
  if (candidates.length === 0) return { verified: false, reason: `signed by key ${signed.signerKeyId.toUpperCase()}, which is not trusted` };
  for (const candidate of candidates) {
    try {
      const message = await pgp.readMessage({ binaryMessage: signed.binary });
      const result = await pgp.verify({
        message,
        verificationKeys: candidate.key,
        expectSigned: true,
        format: 'binary',
        date: now,
      });
      await result.signatures[0]!.verified;
      const expires = await candidate.key.getExpirationTime();
      if (expires instanceof Date && expires.getTime() <= now.getTime()) {
        return { verified: false, reason: `key ${candidate.fingerprint.toUpperCase()} has expired` };
      }
      return { verified: true, fingerprint: candidate.fingerprint, payload: result.data };
    } catch (err) {
      return { verified: false, reason: `signature by ${signed.signerKeyId.toUpperCase()} does not verify: ${(err as Error).message}` };
    }
  }
  return { verified: false, reason: 'no trusted key verifies the signature' };
}

/** Reads an OpenPGP public key as `gpg --export` writes it, armored or binary. */
export async function readPublicKey(untrusted: Uint8Array): Promise<openpgp.PublicKey> {
  const pgp = await openpgpModule();
  const text = Buffer.from(untrusted.subarray(0, 64)).toString('latin1').trimStart();
  let keys: openpgp.Key[];
  try {
    keys = text.startsWith('-----BEGIN PGP PUBLIC KEY BLOCK-----')
      ? await pgp.readKeys({ armoredKeys: Buffer.from(untrusted).toString('utf8') })
      : await pgp.readKeys({ binaryKeys: untrusted });
  } catch (err) {
    throw new SignatureFormatError(`not an OpenPGP public key (export one with gpg --export): ${(err as Error).message}`);
  }
  if (keys.length !== 1) throw new SignatureFormatError(`expected one public key, found ${keys.length}`);
  const key = keys[0]!;
  if (key.isPrivate()) throw new SignatureFormatError('this is a private key: upload only the public key (gpg --export)');
  return key;
}
