// Stored simple signatures, per repository and manifest digest, numbered from 1 in the order
// they were stored (the lookaside's signature-<N>).
import { createHash } from 'node:crypto';
import type { Db } from './db.js';
import { audit } from './audit.js';

// What a client reads must stay within containers/image's limits, whatever a project member
// uploads: at most 128 signatures per manifest, 4 MiB per lookaside signature, and 4 MiB for the
// whole extension list (JSON with each signature in base64, so 4/3 of its bytes plus ~150 bytes).
// A real simple signature is under 2 KiB (an RSA-4096 one with skopeo's payload about 1 KiB), so
// one signature may hold 64 KiB and a manifest's signatures 2 MiB together: the extension list
// then stays under 2.8 MiB, and nobody can make a validly signed image unreadable by piling
// signatures on it.
export const MAX_SIGNATURES_PER_MANIFEST = 128;
export const MAX_SIGNATURE_BYTES = 64 * 1024;
export const MAX_SIGNATURE_BYTES_PER_MANIFEST = 2 * 1024 * 1024;

export interface NewSignature {
  name: string;
  content: Buffer;
  signerKeyId: string;
  signerFingerprint?: string;
  identity: string;
  signedAt: Date;
  createdBy?: string;
}

export interface SignatureRecord extends NewSignature {
  position: number;
  contentDigest: string;
  createdAt: Date;
}

export interface RemoveOptions {
  /** The project the repository is in, for the audit log. */
  project: string;
  actor?: string;
  /** `sha256:<hex>` of the signature's bytes: removed only when it is still that one. */
  contentDigest?: string;
}

export type AddResult =
  | { result: 'created'; position: number }
  | { result: 'duplicate'; position: number }
  | { result: 'full'; message: string }
  | { result: 'no-manifest' };

export interface SignatureStore {
  list(repository: string, digest: string): Promise<SignatureRecord[]>;
  /** Appends unless the same bytes (or the same name) are already stored for the manifest. */
  add(repository: string, digest: string, signature: NewSignature): Promise<AddResult>;
  /**
   * Removes the signature numbered `position`, only when its content digest is `contentDigest` if
   * given; the later ones move down a number. Written to the project's audit log, with `actor`.
   */
  removeAt(repository: string, digest: string, position: number, options: RemoveOptions): Promise<boolean>;
}

interface Row {
  name: string;
  content: Buffer;
  content_digest: string;
  signer_key_id: string;
  signer_fingerprint: string | null;
  identity: string;
  signed_at: Date | null;
  created_by: string | null;
  created_at: Date;
}

const REPO_ID = '(SELECT id FROM repositories WHERE name = $1)';

export function createSignatureStore(db: Db): SignatureStore {
  return {
    async list(repository, digest) {
      const rows = await db.query<Row>(
        `SELECT name, content, content_digest, signer_key_id, signer_fingerprint, identity, signed_at, created_by, created_at
         FROM signatures WHERE repository_id = ${REPO_ID} AND manifest_digest = $2 ORDER BY id`,
        [repository, digest],
      );
      return rows.map((r, i) => ({
        position: i + 1,
        name: r.name,
        content: r.content,
        contentDigest: r.content_digest,
        signerKeyId: r.signer_key_id,
        ...(r.signer_fingerprint ? { signerFingerprint: r.signer_fingerprint } : {}),
        identity: r.identity,
        signedAt: r.signed_at ?? new Date(0),
        ...(r.created_by ? { createdBy: r.created_by } : {}),
        createdAt: r.created_at,
      }));
    },

    add(repository, digest, signature) {
      const contentDigest = `sha256:${createHash('sha256').update(signature.content).digest('hex')}`;
      return db.transaction(async (tx): Promise<AddResult> => {
        // Locking the manifest row serialises writers of one manifest (the 128 limit holds) and
        // proves the manifest exists in this repository.
        const manifest = await tx.query<{ repository_id: number }>(
          `SELECT repository_id FROM manifests WHERE repository_id = ${REPO_ID} AND digest = $2 FOR UPDATE`,
          [repository, digest],
        );
        const repositoryId = manifest[0]?.repository_id;
        if (repositoryId === undefined) return { result: 'no-manifest' };
        const existing = await tx.query<{ content_digest: string; name: string; size: number }>(
          `SELECT content_digest, name, octet_length(content) AS size FROM signatures
           WHERE repository_id = $1 AND manifest_digest = $2 ORDER BY id`,
          [repositoryId, digest],
        );
        const same = existing.findIndex((e) => e.content_digest === contentDigest || e.name === signature.name);
        if (same >= 0) return { result: 'duplicate', position: same + 1 };
        if (existing.length >= MAX_SIGNATURES_PER_MANIFEST) {
          return { result: 'full', message: `this manifest already has ${MAX_SIGNATURES_PER_MANIFEST} signatures, the most clients read` };
        }
        const stored = existing.reduce((sum, e) => sum + Number(e.size), 0);
        if (stored + signature.content.length > MAX_SIGNATURE_BYTES_PER_MANIFEST) {
          return {
            result: 'full',
            message: `this manifest's signatures would pass ${MAX_SIGNATURE_BYTES_PER_MANIFEST} bytes together (${stored} stored), more than clients read`,
          };
        }
        await tx.query(
          `INSERT INTO signatures (repository_id, manifest_digest, name, content, content_digest, signer_key_id,
             signer_fingerprint, identity, signed_at, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          [
            repositoryId,
            digest,
            signature.name,
            signature.content,
            contentDigest,
            signature.signerKeyId,
            signature.signerFingerprint ?? null,
            signature.identity,
            signature.signedAt,
            signature.createdBy ?? null,
          ],
        );
        return { result: 'created', position: existing.length + 1 };
      });
    },

    async removeAt(repository, digest, position, options) {
      return db.transaction(async (tx) => {
        const rows = await tx.query<{ signer_key_id: string }>(
          `DELETE FROM signatures WHERE id = (
             SELECT id FROM signatures WHERE repository_id = ${REPO_ID} AND manifest_digest = $2
             ORDER BY id OFFSET $3 LIMIT 1)
             AND ($4::text IS NULL OR content_digest = $4)
           RETURNING signer_key_id`,
          [repository, digest, position - 1, options.contentDigest ?? null],
        );
        if (rows.length === 0) return false;
        await audit(tx, {
          actor: options.actor,
          action: 'signature.remove',
          project: options.project,
          detail: { repository, digest, position, signerKeyId: rows[0]!.signer_key_id },
        });
        return true;
      });
    },
  };
}
