// Public keys a project trusts, with every change in the audit log. Parsed keys are cached per
// project and dropped when the project's keys change, here and (through the change bus) on every
// replica.
//
// Uploading a key the project already trusts (same fingerprint) merges the new material into the
// stored key, as `gpg --import` does: new subkeys, new self-signatures (a changed expiry),
// revocations of the key, a subkey or a user ID. Merging, not replacing, so that re-uploading an
// old export can never undo a revocation.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type * as openpgp from 'openpgp';
import type { ChangeBus } from '../storage/change-bus.js';
import type { Db } from '../storage/db.js';
import { readPublicKey, type TrustedKey } from './openpgp-signature.js';
import { SignatureFormatError } from './payload.js';

export type KeyKind = 'openpgp' | 'cosign';

export interface ProjectKey {
  id: number;
  project: string;
  kind: KeyKind;
  fingerprint: string;
  keyIds: string[];
  userIds: string[];
  material: Buffer;
  createdBy?: string;
  createdAt: Date;
}

export interface CosignKey {
  /** sha256 of the DER SubjectPublicKeyInfo, hex. */
  fingerprint: string;
  key: KeyObject;
}

export interface TrustSet {
  openpgp: TrustedKey[];
  cosign: CosignKey[];
}

export interface NewKey {
  kind: KeyKind;
  fingerprint: string;
  keyIds: string[];
  userIds: string[];
  material: Buffer;
}

/** What adding a key did: a new key, new material merged into a trusted one, or nothing new. */
export type KeyAddOutcome = 'created' | 'updated' | 'unchanged';

export interface KeyStore {
  list(project: string): Promise<ProjectKey[]>;
  /** Adds a key, or merges it into the trusted key with the same fingerprint. */
  add(project: string, key: NewKey, actor?: string): Promise<{ id: number; outcome: KeyAddOutcome }>;
  remove(project: string, id: number, actor?: string): Promise<boolean>;
  /** The project's keys, parsed (cached). */
  trusted(project: string): Promise<TrustSet>;
}

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

interface Row {
  id: number;
  project: string;
  kind: KeyKind;
  fingerprint: string;
  key_ids: string[];
  user_ids: string[];
  material: Buffer;
  created_by: string | null;
  created_at: Date;
}

/** Describes an uploaded OpenPGP public key (armored or binary) for storing. */
export async function describeOpenpgpKey(untrusted: Uint8Array): Promise<{ key: openpgp.PublicKey; record: NewKey }> {
  const key = await readPublicKey(untrusted);
  // User IDs are shown, never trusted; PostgreSQL text cannot hold NUL, which a key may carry.
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

/** The most a stored key may grow to by merging (as much as one upload may carry). */
export const MAX_KEY_BYTES = 1024 * 1024;

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

export function createKeyStore(db: Db, options: { cacheTtlMs: number; bus?: ChangeBus }): KeyStore {
  const parsed = new Map<string, { keys: TrustSet; expires: number }>();
  let version = 0;
  const forget = (project: string | 'all'): void => {
    version += 1;
    if (project === 'all') parsed.clear();
    else parsed.delete(project);
  };
  options.bus?.subscribe((change) => {
    if (change === 'all') forget('all');
    else if (change.project !== undefined) forget(change.project);
  });
  const changed = (project: string): void => {
    if (options.bus) options.bus.publish({ project });
    else forget(project);
  };

  async function list(project: string): Promise<ProjectKey[]> {
    const rows = await db.query<Row>('SELECT * FROM project_keys WHERE project = $1 ORDER BY id', [project]);
    return rows.map((r) => ({
      id: r.id,
      project: r.project,
      kind: r.kind,
      fingerprint: r.fingerprint,
      keyIds: r.key_ids,
      userIds: r.user_ids,
      material: r.material,
      ...(r.created_by ? { createdBy: r.created_by } : {}),
      createdAt: r.created_at,
    }));
  }

  return {
    list,
    async add(project, key, actor) {
      const audit = (tx: Pick<Db, 'query'>, action: string, detail: Record<string, unknown>) =>
        tx.query('INSERT INTO audit_log (actor, action, project, detail) VALUES ($1, $2, $3, $4)', [
          actor ?? null,
          action,
          project,
          JSON.stringify(detail),
        ]);
      const result = await db.transaction(async (tx): Promise<{ id: number; outcome: KeyAddOutcome }> => {
        const existing = await tx.query<{ id: number; material: Buffer }>(
          'SELECT id, material FROM project_keys WHERE project = $1 AND fingerprint = $2 FOR UPDATE',
          [project, key.fingerprint],
        );
        const stored = existing[0];
        if (!stored) {
          const rows = await tx.query<{ id: number }>(
            `INSERT INTO project_keys (project, kind, fingerprint, key_ids, user_ids, material, created_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
            [project, key.kind, key.fingerprint, key.keyIds, key.userIds, key.material, actor ?? null],
          );
          await audit(tx, 'key.add', { id: rows[0]!.id, kind: key.kind, fingerprint: key.fingerprint });
          return { id: rows[0]!.id, outcome: 'created' };
        }
        // A cosign key is its SubjectPublicKeyInfo: the same fingerprint is the same key.
        const merged = key.kind === 'openpgp' ? await mergeOpenpgpKey(stored.material, key.material) : undefined;
        if (!merged) return { id: stored.id, outcome: 'unchanged' };
        await tx.query('UPDATE project_keys SET key_ids = $2, user_ids = $3, material = $4 WHERE id = $1', [
          stored.id,
          merged.keyIds,
          merged.userIds,
          merged.material,
        ]);
        await audit(tx, 'key.update', {
          id: stored.id,
          kind: key.kind,
          fingerprint: key.fingerprint,
          before: sha256(stored.material),
          after: sha256(merged.material),
        });
        return { id: stored.id, outcome: 'updated' };
      });
      if (result.outcome !== 'unchanged') changed(project); // after the commit, so nobody reloads the old keys
      return result;
    },
    async remove(project, id, actor) {
      const removed = await db.transaction(async (tx) => {
        const rows = await tx.query<{ fingerprint: string }>(
          'DELETE FROM project_keys WHERE project = $1 AND id = $2 RETURNING fingerprint',
          [project, id],
        );
        if (rows.length === 0) return false;
        await tx.query('INSERT INTO audit_log (actor, action, project, detail) VALUES ($1, $2, $3, $4)', [
          actor ?? null,
          'key.remove',
          project,
          JSON.stringify({ id, fingerprint: rows[0]!.fingerprint }),
        ]);
        return true;
      });
      if (removed) changed(project);
      return removed;
    },
    async trusted(project) {
      const hit = parsed.get(project);
      if (hit && hit.expires > Date.now()) return hit.keys;
      const before = version;
      const keys: TrustSet = { openpgp: [], cosign: [] };
      for (const row of await list(project)) {
        if (row.kind === 'openpgp') keys.openpgp.push({ fingerprint: row.fingerprint, key: await readPublicKey(row.material) });
        else keys.cosign.push({ fingerprint: row.fingerprint, key: createPublicKey(row.material.toString('utf8')) });
      }
      if (version === before) parsed.set(project, { keys, expires: Date.now() + options.cacheTtlMs });
      return keys;
    },
  };
}
