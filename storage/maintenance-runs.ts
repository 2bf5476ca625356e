// Scheduled work shared by replicas (garbage collection, mirroring): one row per job in
// maintenance_runs; a replica runs a job only when it claims the row, which it can once the last
// start is at least `intervalSeconds` old.
import type { Queryable } from './db.js';

export async function claimRun(db: Queryable, name: string, intervalSeconds: number): Promise<boolean> {
  const claimed = await db.query(
    `INSERT INTO maintenance_runs (name, started_at) VALUES ($1, now())
     ON CONFLICT (name) DO UPDATE SET started_at = now(), finished_at = NULL, report = NULL
     WHERE maintenance_runs.started_at < now() - make_interval(secs => $2) RETURNING name`,
    [name, intervalSeconds],
  );
  return claimed.length > 0;
}

export async function finishRun(db: Queryable, name: string, report: unknown): Promise<void> {
  await db.query('UPDATE maintenance_runs SET finished_at = now(), report = $2 WHERE name = $1', [name, JSON.stringify(report)]);
}
