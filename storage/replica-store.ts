// Which replicas share this database, as each one's heartbeat says: a row per process, refreshed
// every 30 seconds, and rows unseen for a day removed.
import type { Queryable } from './db.js';

export interface ReplicaInfo {
  id: string;
  host: string;
  version: string;
  startedAt: Date;
  seenAt: Date;
}

export interface ReplicaStore {
  beat(replica: Omit<ReplicaInfo, 'seenAt'>): Promise<void>;
  /** Replicas seen within the last `withinMs`, most recently started first. */
  list(withinMs: number): Promise<ReplicaInfo[]>;
}

interface Row {
  id: string;
  host: string;
  version: string;
  started_at: Date;
  seen_at: Date;
}

export function createReplicaStore(db: Queryable): ReplicaStore {
  return {
    async beat(replica) {
      await db.query(
        `INSERT INTO replicas (id, host, version, started_at, seen_at) VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (id) DO UPDATE SET seen_at = now()`,
        [replica.id, replica.host, replica.version, replica.startedAt],
      );
      await db.query(`DELETE FROM replicas WHERE seen_at < now() - interval '1 day'`);
    },
    async list(withinMs) {
      const rows = await db.query<Row>(
        `SELECT id, host, version, started_at, seen_at FROM replicas
         WHERE seen_at > now() - make_interval(secs => $1) ORDER BY started_at DESC`,
        [withinMs / 1000],
      );
      return rows.map((r) => ({
        id: r.id,
        host: r.host,
        version: r.version,
        startedAt: new Date(r.started_at),
        seenAt: new Date(r.seen_at),
      }));
    },
  };
}
