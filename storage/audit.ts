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

export interface AuditRecord extends AuditEntry {
  id: number;
  at: Date;
}

export interface AuditLog {
  /** A project's entries, newest first; `before`: only entries with a smaller id (the next page). */
  list(project: string, page: { before?: number; limit: number }): Promise<AuditRecord[]>;
}

interface Row {
  id: number;
  at: Date;
  actor: string | null;
  action: string;
  project: string;
  detail: object | string | null;
}

export function createAuditLog(db: Queryable): AuditLog {
  return {
    async list(project, page) {
      const rows = await db.query<Row>(
        `SELECT id, at, actor, action, project, detail FROM audit_log
         WHERE project = $1 AND ($2::bigint IS NULL OR id < $2)
           -- This project's own history: not that of an earlier, deleted project of its name.
           AND at >= coalesce((SELECT created_at FROM projects WHERE name = $1), '-infinity')
         ORDER BY id DESC LIMIT $3`,
        [project, page.before ?? null, page.limit],
      );
      return rows.map((r) => ({
        id: Number(r.id),
        at: new Date(r.at),
        actor: r.actor ?? undefined,
        action: r.action,
        project: r.project,
        detail: typeof r.detail === 'string' ? (JSON.parse(r.detail) as object) : (r.detail ?? {}),
      }));
    },
  };
}
