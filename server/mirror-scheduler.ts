// Scheduled mirroring: every mirror project whose settings name sync rules and an interval has
// its rules run (mirror/mirror-run.ts) once per interval, by one replica at a time (the
// maintenance_runs row `mirror:<project>`). Checked once a minute, and at once when a project's
// settings change (a new schedule runs for the first time without waiting).
import type { Db } from '../storage/db.js';
import { createMaintenanceRuns } from '../storage/maintenance-runs.js';
import type { ProjectStore } from '../storage/project-store.js';
import type { MetadataStore } from '../storage/metadata-store.js';
import { runMirror, type MirrorRunReport } from '../mirror/mirror-run.js';
import type { PullThrough } from '../mirror/pull-through.js';
import type { ChangeBus } from '../storage/change-bus.js';
import type { Logger } from './logging.js';

export interface MirrorSchedulerOptions {
  db: Db;
  projects: Pick<ProjectStore, 'list'>;
  pullThrough: PullThrough;
  metadata: MetadataStore;
  log: Logger;
  bus: ChangeBus;
  /** How often the schedules are looked at (default a minute). */
  checkEveryMs?: number;
  onReport?: (project: string, reports: MirrorRunReport[]) => void;
}

export function startMirrorScheduler(options: MirrorSchedulerOptions): { stop(): void } {
  const { db, projects, pullThrough, metadata, log } = options;
  const runs = createMaintenanceRuns(db);
  let running = false;
  let again = false;
  let stopped = false;
  const tick = async (): Promise<void> => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    again = false;
    try {
      for (const project of await projects.list()) {
        const sync = project.mirror?.sync;
        if (!sync || sync.intervalSeconds <= 0 || sync.rules.length === 0) continue;
        const job = `mirror:${project.name}`;
        if (!(await runs.claim(job, sync.intervalSeconds))) continue;
        const reports: MirrorRunReport[] = [];
        for (const rule of sync.rules) {
          const target = await pullThrough.target(`${project.name}/${rule.repository}`);
          if (!target) continue;
          try {
            reports.push(await runMirror({ pullThrough, metadata, log }, target, rule));
          } catch (err) {
            log.error({ err, project: project.name, repository: rule.repository }, 'scheduled mirroring failed');
          }
        }
        await runs.finish(job, reports);
        for (const report of reports) log.info({ project: project.name, report }, 'scheduled mirroring finished');
        options.onReport?.(project.name, reports);
      }
    } catch (err) {
      log.error({ err }, 'scheduled mirroring failed');
    } finally {
      running = false;
      if (again) void tick();
    }
  };
  const timer = setInterval(() => void tick(), options.checkEveryMs ?? 60_000);
  timer.unref();
  options.bus.subscribe((change) => {
    if (change === 'all' || change.project !== undefined) void tick();
  });
  void tick();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
