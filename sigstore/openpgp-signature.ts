// Simple signatures as OpenPGP signed messages: normalising what clients upload to the binary
// form the lookaside must serve, reading who signed, and verifying against trusted keys.
//
// - Stored and served bytes are a binary signed message (what `gpg --sign` writes). skopeo
//   rejects armored and clearsigned signatures on the lookaside, so armored uploads are converted
//   to binary; clearsigned and detached signatures are refused.
// - Verification follows the client (containers/image verifies through gpgme): the signature must
//   be valid and made while its key was valid, AND the signing key (primary or subkey) must be valid
//   now: gpgme reports KEY_EXPIRED / KEY_REVOKED for a key that expired or was revoked after it
//   signed, and containers/image then refuses the signature. Only then is the payload looked at.
// - Everything untrusted is read with bounds: decompression is capped (openpgp.js's own default is
//   unbounded, so a 1 KB message could inflate to gigabytes), and openpgp.js allows no compressed
//   packet inside a compressed packet, so nesting is one level deep.
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

/**
 * The most a compressed packet may inflate to. A simple-signing payload is a few hundred bytes
 * (skopeo's, with creator and timestamp, about 300), so this is ample for any real signature.
 */
export const MAX_DECOMPRESSED_BYTES = 256 * 1024;

/** Options every openpgp.js call that reads untrusted bytes gets. */
const READ_LIMITS = { maxDecompressedMessageSize: MAX_DECOMPRESSED_BYTES } as const;

/**
 * How far in the future a signature's creation time may lie, for signers whose clock runs ahead
 * (skopeo signs with the signer's clock and the registry checks at once). gpg 2.2.40 itself sets
 * no bound (it verifies a signature dated two days ahead), openpgp.js refuses any; five minutes
 * covers clocks that NTP keeps roughly right, and a signature dated further ahead is refused with a
 * message that says so.
 */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;

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
  /**
   * When the signature itself expires (its hashed Signature Expiration Time subpacket: gpg
   * --default-sig-expire), if it does. Verification refuses it from then on, as gpg does (EXPSIG)
   * and containers/image with it; a verdict kept in a cache must not outlive it.
   */
  expires?: Date;
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
    message = await pgp.readMessage({ binaryMessage: binary, config: READ_LIMITS });
  } catch (err) {
    throw new SignatureFormatError(`not an OpenPGP message: ${(err as Error).message}`);
  }
  let result: openpgp.VerifyMessageResult<Uint8Array>;
  try {
    result = await pgp.verify({ message, verificationKeys: [], expectSigned: false, format: 'binary', config: READ_LIMITS });
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
  const created = packet.created ?? new Date(0);
  return {
    binary,
    untrustedPayload: data,
    signerKeyId: entry.keyID.toHex(),
    ...(packet.issuerFingerprint ? { signerFingerprint: hex(packet.issuerFingerprint) } : {}),
    created,
    // openpgp.js reads the expiry from the hashed subpackets only, as it judges by them.
    ...(!packet.signatureNeverExpires && packet.signatureExpirationTime
      ? { expires: new Date(created.getTime() + packet.signatureExpirationTime * 1000) }
      : {}),
  };
}

export interface TrustedKey {
  /** Primary key fingerprint (hex, lower case). */
  fingerprint: string;
  key: openpgp.PublicKey;
}

export type Verification = { verified: true; fingerprint: string; payload: Uint8Array } | { verified: false; reason: string };

/**
 * Verifies the signature with whichever trusted key (primary or subkey) made it, as gpgme judges
 * it for containers/image: the signature is valid and was made while the key was valid, and the
 * signing key is valid now (neither it nor its primary key expired or revoked).
 */
export async function verifySignedMessage(signed: SignedMessage, trusted: TrustedKey[], now: Date = new Date()): Promise<Verification> {
  const pgp = await openpgpModule();
  const signer = signed.signerKeyId.toUpperCase();
  const candidates = trusted.filter((t) => t.key.getKeyIDs().some((id) => id.toHex() === signed.signerKeyId));
  if (candidates.length === 0) return { verified: false, reason: `signed by key ${signer}, which is not trusted` };
  const ahead = signed.created.getTime() - now.getTime();
  if (ahead > CLOCK_SKEW_MS) {
    return {
      verified: false,
      reason: `signature by ${signer} is dated ${signed.created.toISOString()}, ${Math.round(ahead / 1000)} s in the future (at most ${CLOCK_SKEW_MS / 1000} s of clock skew is accepted)`,
    };
  }
  // A signature from a signer whose clock runs a little ahead is judged as of its own time.
  const at = ahead > 0 ? signed.created : now;
  let verification: Verification = { verified: false, reason: 'no trusted key verifies the signature' };
  // Several trusted keys may share a 64-bit key ID; any of them may have made the signature.
  for (const candidate of candidates) {
    verification = await verifyWith(pgp, signed, candidate, at);
    if (verification.verified) break;
  }
  return verification;
}

async function verifyWith(pgp: typeof openpgp, signed: SignedMessage, candidate: TrustedKey, at: Date): Promise<Verification> {
  // The key first, as gpgme reports it (KEY_EXPIRED, KEY_REVOKED): then the message says why.
  const problem = await signingKeyProblem(candidate.key, signed.signerKeyId, at);
  if (problem) return { verified: false, reason: problem };
  try {
    const message = await pgp.readMessage({ binaryMessage: signed.binary, config: READ_LIMITS });
    const result = await pgp.verify({
      message,
      verificationKeys: candidate.key,
      expectSigned: true,
      format: 'binary',
      date: at,
      config: READ_LIMITS,
    });
    await result.signatures[0]!.verified;
    return { verified: true, fingerprint: candidate.fingerprint, payload: result.data };
  } catch (err) {
    return { verified: false, reason: `signature by ${signed.signerKeyId.toUpperCase()} does not verify: ${(err as Error).message}` };
  }
}

/** Why the key with this ID cannot sign at `date` (expired or revoked, it or its primary), if so. */
export async function signingKeyProblem(key: openpgp.PublicKey, keyIdHex: string, date: Date): Promise<string | undefined> {
  const pgp = await openpgpModule();
  const keyId = key.getKeyIDs().find((id) => id.toHex() === keyIdHex.toLowerCase());
  if (!keyId) return `key ${keyIdHex.toUpperCase()} is not part of key ${key.getFingerprint().toUpperCase()}`;
  try {
    await key.getSigningKey(keyId, date, undefined, { ...pgp.config, ...READ_LIMITS });
    return undefined;
  } catch (err) {
    const primary = key.getFingerprint().toUpperCase();
    if (await key.isRevoked(undefined, undefined, date)) return `key ${primary} has been revoked`;
    const expires = await key.getExpirationTime();
    if (expires instanceof Date && expires.getTime() <= date.getTime()) return `key ${primary} expired on ${expires.toISOString()}`;
    const subkey = key.getSubkeys(keyId)[0];
    if (subkey) {
      const name = `signing subkey ${keyIdHex.toUpperCase()} of key ${primary}`;
      if (await subkey.isRevoked(undefined as unknown as openpgp.SignaturePacket, undefined as unknown as openpgp.PublicKeyPacket, date)) {
        return `${name} has been revoked`;
      }
      const subkeyExpires = await subkey.getExpirationTime(date).catch(() => null);
      if (subkeyExpires instanceof Date && subkeyExpires.getTime() <= date.getTime())
        return `${name} expired on ${subkeyExpires.toISOString()}`;
      return `${name} is not valid for signing: ${(err as Error).message}`;
    }
    return `key ${primary} is not valid for signing: ${(err as Error).message}`;
  }
}

/** Reads an OpenPGP public key as `gpg --export` writes it, armored or binary. */
export async function readPublicKey(untrusted: Uint8Array): Promise<openpgp.PublicKey> {
  const pgp = await openpgpModule();
  const text = Buffer.from(untrusted.subarray(0, 64)).toString('latin1').trimStart();
  let keys: openpgp.Key[];
  try {
    keys = text.startsWith('-----BEGIN PGP PUBLIC KEY BLOCK-----')
      ? await pgp.readKeys({ armoredKeys: Buffer.from(untrusted).toString('utf8'), config: READ_LIMITS })
      : await pgp.readKeys({ binaryKeys: untrusted, config: READ_LIMITS });
  } catch (err) {
    throw new SignatureFormatError(`not an OpenPGP public key (export one with gpg --export): ${(err as Error).message}`);
  }
  if (keys.length !== 1) throw new SignatureFormatError(`expected one public key, found ${keys.length}`);
  const key = keys[0]!;
  if (key.isPrivate()) throw new SignatureFormatError('this is a private key: upload only the public key (gpg --export)');
  return key;
}
