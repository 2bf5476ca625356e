// Robot accounts as rows: project, name, role, a sha256 of the secret, expiry, last use. Creation
// and revocation are written to the audit log in the same transaction. What a robot may do and how
// its secret is checked is auth/robots.ts's business.
import { audit } from './audit.js';
import type { Db } from './db.js';

export type RobotRole = 'guest' | 'developer' | 'maintainer';

export interface RobotRecord {
  id: number;
  project: string;
  /** The short name (`ci` of `robot$team+ci`). */
  name: string;
  role: RobotRole;
  secretSha256: Buffer;
  /** Undefined: never expires. */
  expiresAt?: Date;
  createdBy?: string;
  createdAt: Date;
  lastUsedAt?: Date;
}

export interface NewRobot {
  project: string;
  name: string;
  role: RobotRole;
  secretSha256: Buffer;
  expiresAt?: Date;
}

export interface RobotStore {
  find(project: string, name: string): Promise<RobotRecord | undefined>;
  list(project: string): Promise<RobotRecord[]>;
  /** Undefined when the project does not exist or already has a robot of that name. */
  create(robot: NewRobot, actor?: string): Promise<RobotRecord | undefined>;
  /** False when there was no such robot. */
  remove(project: string, name: string, actor?: string): Promise<boolean>;
  /** Records a use; no audit row (it is not a change anyone made). */
  touch(id: number, at: Date): Promise<void>;
}

interface Row {
  id: number;
  project: string;
  name: string;
  role: RobotRole;
  secret_sha256: Buffer | Uint8Array;
  expires_at: Date | null;
  created_by: string | null;
  created_at: Date;
  last_used_at: Date | null;
}

/** The columns a Row holds, named: a statement kept prepared never returns a table whole. */
const COLUMNS = 'id, project, name, role, secret_sha256, expires_at, created_by, created_at, last_used_at';

function toRecord(row: Row): RobotRecord {
  return {
    id: Number(row.id),
    project: row.project,
    name: row.name,
    role: row.role,
    secretSha256: Buffer.from(row.secret_sha256),
    ...(row.expires_at ? { expiresAt: row.expires_at } : {}),
    ...(row.created_by ? { createdBy: row.created_by } : {}),
    createdAt: row.created_at,
    ...(row.last_used_at ? { lastUsedAt: row.last_used_at } : {}),
  };
}

export function createPostgresRobotStore(db: Db): RobotStore {
  return {
    async find(project, name) {
      const rows = await db.query<Row>(`SELECT ${COLUMNS} FROM robots WHERE project = $1 AND name = $2`, [project, name]);
      return rows[0] && toRecord(rows[0]);
    },
    async list(project) {
      return (await db.query<Row>(`SELECT ${COLUMNS} FROM robots WHERE project = $1 ORDER BY name`, [project])).map(toRecord);
    },
    create(robot, actor) {
      return db.transaction(async (tx) => {
        const rows = await tx.query<Row>(
          `INSERT INTO robots (project, name, role, secret_sha256, expires_at, created_by)
           SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM projects WHERE name = $1)
           ON CONFLICT (project, name) DO NOTHING RETURNING ${COLUMNS}`,
          [robot.project, robot.name, robot.role, robot.secretSha256, robot.expiresAt ?? null, actor ?? null],
        );
        if (!rows[0]) return undefined;
        await audit(tx, {
          actor,
          action: 'robot.create',
          project: robot.project,
          detail: { robot: robot.name, role: robot.role, expiresAt: robot.expiresAt?.toISOString() ?? null },
        });
        return toRecord(rows[0]);
      });
    },
    remove(project, name, actor) {
      return db.transaction(async (tx) => {
        const rows = await tx.query('DELETE FROM robots WHERE project = $1 AND name = $2 RETURNING id', [project, name]);
        if (rows.length === 0) return false;
        await audit(tx, { actor, action: 'robot.revoke', project, detail: { robot: name } });
        return true;
      });
    },
    async touch(id, at) {
      await db.query('UPDATE robots SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)', [id, at]);
    },
  };
}
