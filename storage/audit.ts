// The audit log: who changed what in a project, written in the same transaction as the change.
import type { Queryable } from './db.js';

export interface AuditEntry {
  actor: string | undefined;
  /** `project.create`, `member.set`, `key.add`, `key.update`, ... */
  action: string;
  project: string;
  detail: object;
}

export async function audit(tx: Queryable, entry: AuditEntry): Promise<void> {
  await tx.query('INSERT INTO audit_log (actor, action, project, detail) VALUES ($1, $2, $3, $4)', [
    entry.actor ?? null,
    entry.action,
    entry.project,
    JSON.stringify(entry.detail),
  ]);
}
