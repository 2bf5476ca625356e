// The public keys each project trusts, as rows: what was uploaded (its kind, fingerprint, key IDs,
// user IDs and material), with every change in the audit log. What the material means (parsing,
// merging, trust) is sigstore/keys.ts's business.
import { createHash } from 'node:crypto';
import { audit } from './audit.js';
import type { Db } from './db.js';

export type KeyKind = 'openpgp' | 'cosign';

export interface NewKey {
  kind: KeyKind;
  fingerprint: string;
  keyIds: string[];
  userIds: string[];
  material: Buffer;
}

export interface ProjectKey extends NewKey {
  id: number;
  project: string;
  createdBy?: string;
  createdAt: Date;
}

/** What saving a key did: a new key, new material merged into a trusted one, or nothing new. */
export type KeySaveOutcome = 'created' | 'updated' | 'unchanged';

/** Given the stored material of a key with the same fingerprint: what to store instead, if anything. */
export type KeyMerge = (stored: Buffer) => Promise<NewKey | undefined>;

export interface KeyStore {
  list(project: string): Promise<ProjectKey[]>;
  /** Adds the key, or (same fingerprint) stores what `merge` makes of the stored one, under a row lock. */
  save(project: string, key: NewKey, merge: KeyMerge, actor?: string): Promise<{ id: number; outcome: KeySaveOutcome }>;
  remove(project: string, id: number, actor?: string): Promise<boolean>;
}

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

/** The columns a Row holds, named: a statement kept prepared never returns a table whole. */
const COLUMNS = 'id, project, kind, fingerprint, key_ids, user_ids, material, created_by, created_at';

const sha256 = (bytes: Buffer): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export function createPostgresKeyStore(db: Db): KeyStore {
  return {
    async list(project) {
      const rows = await db.query<Row>(`SELECT ${COLUMNS} FROM project_keys WHERE project = $1 ORDER BY id`, [project]);
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
    },

    save(project, key, merge, actor) {
      return db.transaction(async (tx) => {
        // Inserting first (doing nothing on a conflict) settles concurrent uploads of one new key:
        // one inserts, the others find the row and lock it.
        const inserted = await tx.query<{ id: number }>(
          `INSERT INTO project_keys (project, kind, fingerprint, key_ids, user_ids, material, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (project, fingerprint) DO NOTHING RETURNING id`,
          [project, key.kind, key.fingerprint, key.keyIds, key.userIds, key.material, actor ?? null],
        );
        if (inserted[0]) {
          const id = inserted[0].id;
          await audit(tx, { actor, action: 'key.add', project, detail: { id, kind: key.kind, fingerprint: key.fingerprint } });
          return { id, outcome: 'created' as const };
        }
        const stored = (
          await tx.query<{ id: number; material: Buffer }>(
            'SELECT id, material FROM project_keys WHERE project = $1 AND fingerprint = $2 FOR UPDATE',
            [project, key.fingerprint],
          )
        )[0]!;
        const merged = await merge(stored.material);
        if (!merged) return { id: stored.id, outcome: 'unchanged' as const };
        await tx.query('UPDATE project_keys SET key_ids = $2, user_ids = $3, material = $4 WHERE id = $1', [
          stored.id,
          merged.keyIds,
          merged.userIds,
          merged.material,
        ]);
        const detail = {
          id: stored.id,
          kind: key.kind,
          fingerprint: key.fingerprint,
          before: sha256(stored.material),
          after: sha256(merged.material),
        };
        await audit(tx, { actor, action: 'key.update', project, detail });
        return { id: stored.id, outcome: 'updated' as const };
      });
    },

    remove(project, id, actor) {
      return db.transaction(async (tx) => {
        const rows = await tx.query<{ fingerprint: string }>(
          'DELETE FROM project_keys WHERE project = $1 AND id = $2 RETURNING fingerprint',
          [project, id],
        );
        if (rows.length === 0) return false;
        await audit(tx, { actor, action: 'key.remove', project, detail: { id, fingerprint: rows[0]!.fingerprint } });
        return true;
      });
    },
  };
}
