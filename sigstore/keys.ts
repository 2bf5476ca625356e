// The keys a project trusts, as the gate and the signature store use them: uploads described
// (OpenPGP as `gpg --export` writes it, or a cosign PEM public key), merged into a trusted key with
// the same fingerprint, and parsed into a trust set that is cached per project and dropped when the
// project's keys change, here and (through the change bus) on every replica.
//
// Uploading a key the project already trusts (same fingerprint) merges the new material into the
// stored key, as `gpg --import` does: new subkeys, new self-signatures (a changed expiry),
// revocations of the key, a subkey or a user ID. Merging, not replacing, so that re-uploading an
// old export can never undo a revocation.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type * as openpgp from 'openpgp';
import type { ChangeBus } from '../storage/change-bus.js';
import type { KeySaveOutcome, KeyStore, NewKey, ProjectKey } from '../storage/key-store.js';
import { readPublicKey, type TrustedKey } from './openpgp-signature.js';
import { SignatureFormatError } from './payload.js';

export type { NewKey, ProjectKey } from '../storage/key-store.js';

export interface CosignKey {
  /** sha256 of the DER SubjectPublicKeyInfo, hex. */
  fingerprint: string;
  key: KeyObject;
}

export interface TrustSet {
  openpgp: TrustedKey[];
  cosign: CosignKey[];
  /**
   * When an OpenPGP key or subkey in the set expires, in ms since the epoch, ascending: a decision
   * made with the set may change then with no write to tell (sigstore/pull-gate.ts caches none past
   * the next one).
   */
  expiries: number[];
}

/** Every finite expiry of a key and its subkeys (a key's validity changes at each). */
async function expiriesOf(key: TrustedKey['key']): Promise<number[]> {
  const times: number[] = [];
  const add = (value: Date | number | null): void => {
    if (value instanceof Date && Number.isFinite(value.getTime())) times.push(value.getTime());
  };
  add(await key.getExpirationTime().catch(() => null));
  for (const subkey of key.getSubkeys()) add(await subkey.getExpirationTime().catch(() => null));
  return times;
}

export interface Keys {
  list(project: string): Promise<ProjectKey[]>;
  /** Adds an uploaded key (OpenPGP or PEM), or merges it into the trusted key with its fingerprint. */
  add(project: string, untrusted: Buffer, actor?: string): Promise<{ id: number; outcome: KeySaveOutcome; key: NewKey }>;
  remove(project: string, id: number, actor?: string): Promise<boolean>;
  /** The project's keys, parsed (cached). */
  trusted(project: string): Promise<TrustSet>;
}

/** The most a key may hold, as uploaded or grown by merging. */
export const MAX_KEY_BYTES = 1024 * 1024;

/** Describes an uploaded OpenPGP public key (armored or binary) for storing. */
export async function describeOpenpgpKey(untrusted: Uint8Array): Promise<{ key: openpgp.PublicKey; record: NewKey }> {
  const key = await readPublicKey(untrusted);
  // User IDs are shown, never trusted; PostgreSQL text cannot hold NUL, which a key may carry.
  // eslint-disable-next-line no-control-regex -- NUL is the character replaced
  const userIds = key.getUserIDs().map((id) => id.replace(/\u0000/g, '\uFFFD'));
  return {
    key,
    record: {
      kind: 'openpgp',
      fingerprint: key.getFingerprint().toLowerCase(),
      keyIds: key.getKeyIDs().map((id) => id.toHex()),
      userIds,
      material: Buffer.from(key.write()),
    },
  };
}

/** A PEM public key as cosign writes it; its id is the sha256 of the DER SubjectPublicKeyInfo. */
export function describePemKey(text: string): NewKey {
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch (err) {
    throw new SignatureFormatError(`not a PEM public key: ${(err as Error).message}`);
  }
  return {
    kind: 'cosign',
    fingerprint: createHash('sha256')
      .update(key.export({ type: 'spki', format: 'der' }))
      .digest('hex'),
    keyIds: [],
    userIds: [],
    material: Buffer.from(key.export({ type: 'spki', format: 'pem' }).toString()),
  };
}

/** An uploaded key of either kind, described for storing. */
export async function describeKey(untrusted: Buffer): Promise<NewKey> {
  if (untrusted.toString('latin1', 0, 64).trimStart().startsWith('-----BEGIN PUBLIC KEY-----'))
    return describePemKey(untrusted.toString('utf8'));
  return (await describeOpenpgpKey(untrusted)).record;
}

/**
 * The stored OpenPGP key with the components of `incoming` (same fingerprint) merged in, described
 * for storing; `undefined` when nothing new came.
 */
export async function mergeOpenpgpKey(stored: Buffer, incoming: Buffer): Promise<NewKey | undefined> {
  const [current, update] = await Promise.all([readPublicKey(stored), readPublicKey(incoming)]);
  const merged = await current.update(update);
  const described = await describeOpenpgpKey(merged.write());
  if (described.record.material.equals(stored)) return undefined;
  if (described.record.material.length > MAX_KEY_BYTES) {
    throw new SignatureFormatError(`the merged key would pass ${MAX_KEY_BYTES} bytes`);
  }
  return described.record;
}

export function createKeys(store: KeyStore, options: { cacheTtlMs: number; bus?: ChangeBus }): Keys {
  const parsed = new Map<string, { keys: TrustSet; expires: number }>();
  let version = 0;
  /** Forgets one project's keys, or every project's for 'all'. */
  const forget = (project: string): void => {
    version += 1;
    if (project === 'all') parsed.clear();
    else parsed.delete(project);
  };
  options.bus?.subscribe((change) => {
    if (change === 'all') forget('all');
    else if (change.project !== undefined) forget(change.project);
  });
  // After the commit, so nobody reloads the old keys.
  const changed = (project: string): void => {
    if (options.bus) options.bus.publish({ project });
    else forget(project);
  };

  return {
    list: (project) => store.list(project),

    async add(project, untrusted, actor) {
      if (untrusted.length > MAX_KEY_BYTES) throw new SignatureFormatError(`a key may be at most ${MAX_KEY_BYTES} bytes`);
      const key = await describeKey(untrusted);
      // A cosign key is its SubjectPublicKeyInfo: the same fingerprint is the same key.
      const merge = async (stored: Buffer): Promise<NewKey | undefined> =>
        key.kind === 'openpgp' ? mergeOpenpgpKey(stored, key.material) : undefined;
      const { id, outcome } = await store.save(project, key, merge, actor);
      if (outcome !== 'unchanged') changed(project);
      return { id, outcome, key };
    },

    async remove(project, id, actor) {
      const removed = await store.remove(project, id, actor);
      if (removed) changed(project);
      return removed;
    },

    async trusted(project) {
      const hit = parsed.get(project);
      if (hit && hit.expires > Date.now()) return hit.keys;
      const before = version;
      const keys: TrustSet = { openpgp: [], cosign: [], expiries: [] };
      for (const row of await store.list(project)) {
        if (row.kind === 'openpgp') {
          const key = await readPublicKey(row.material);
          keys.openpgp.push({ fingerprint: row.fingerprint, key });
          keys.expiries.push(...(await expiriesOf(key)));
        } else keys.cosign.push({ fingerprint: row.fingerprint, key: createPublicKey(row.material.toString('utf8')) });
      }
      keys.expiries.sort((a, b) => a - b);
      if (version === before) parsed.set(project, { keys, expires: Date.now() + options.cacheTtlMs });
      return keys;
    },
  };
}

/** What a person wants to know about a trusted key before relying on it. */
export interface KeyDetails {
  algorithm: string;
  createdAt: Date;
  /** null: never expires. */
  expiresAt: Date | null;
  revoked: boolean;
  subkeys: { keyId: string; algorithm: string; createdAt: Date; expiresAt: Date | null; revoked: boolean; signs: boolean }[];
}

function algorithmName(info: { algorithm: string; bits?: number; curve?: string }): string {
  return [info.algorithm, info.curve ?? (info.bits ? `${info.bits} bits` : undefined)].filter(Boolean).join(' ');
}

const asDate = (value: Date | number | null): Date | null =>
  value instanceof Date ? value : value === Infinity || value === null ? null : new Date(value);

/** Algorithm, expiry, revocation and subkeys of an OpenPGP key as stored (read, as always, with limits). */
export async function openpgpKeyDetails(material: Buffer): Promise<KeyDetails> {
  const key = await readPublicKey(material);
  const expiresAt = asDate(await key.getExpirationTime().catch(() => null));
  const subkeys = await Promise.all(
    key.getSubkeys().map(async (subkey) => ({
      keyId: subkey.getKeyID().toHex().toUpperCase(),
      algorithm: algorithmName(subkey.getAlgorithmInfo()),
      createdAt: subkey.getCreationTime(),
      expiresAt: asDate(await subkey.getExpirationTime().catch(() => null)),
      revoked: subkey.revocationSignatures.length > 0,
      signs: subkey.bindingSignatures.some((sig) => ((sig.keyFlags?.[0] ?? 0) & 0x02) !== 0),
    })),
  );
  return {
    algorithm: algorithmName(key.getAlgorithmInfo()),
    createdAt: key.getCreationTime(),
    expiresAt,
    revoked: await key.isRevoked().catch(() => false),
    subkeys,
  };
}
