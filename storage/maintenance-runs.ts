// Periodic maintenance shared by replicas through one row per task: a replica claims a run when
// the last one started longer than an interval ago, so one of them runs each period.
import type { Queryable } from './db.js';

export interface MaintenanceRuns {
  /** True when this replica claimed the task's run for this period. */
  claim(name: string, intervalSeconds: number): Promise<boolean>;
  /** Records that the claimed run ended, with its report. */
  finish(name: string, report: unknown): Promise<void>;
}

export function createMaintenanceRuns(db: Queryable): MaintenanceRuns {
  return {
    async claim(name, intervalSeconds) {
      const claimed = await db.query(
        `INSERT INTO maintenance_runs (name, started_at) VALUES ($1, now())
         ON CONFLICT (name) DO UPDATE SET started_at = now(), finished_at = NULL, report = NULL
         WHERE maintenance_runs.started_at < now() - make_interval(secs => $2) RETURNING name`,
        [name, intervalSeconds],
      );
      return claimed.length > 0;
    },
    async finish(name, report) {
      await db.query('UPDATE maintenance_runs SET finished_at = now(), report = $2 WHERE name = $1', [name, JSON.stringify(report)]);
    },
  };
}
