// Garbage collection run by the server: the options a configuration gives, and a scheduler that
// runs it every REGISTRY_GC_INTERVAL. Replicas share the schedule through one database row
// (storage/maintenance-runs.ts), so one of them runs each period. The HTTP side is
// server/handlers/gc.ts.
import type { GarbageCollector, GcOptions, GcReport } from '../storage/gc.js';
import type { MaintenanceRuns } from '../storage/maintenance-runs.js';
import type { Config } from './config.js';
import type { Logger } from './logging.js';
import type { Metrics } from './metrics.js';

/** Counts a finished run in the metrics /metrics serves. */
export function recordGc(metrics: Metrics, report: GcReport): void {
  if (report.dryRun) return;
  metrics.gcRuns.inc();
  metrics.gcBlobsRemoved.inc(report.blobsRemoved);
  metrics.gcBytesRemoved.inc(report.bytesRemoved);
}

/**
 * Beyond the idle timeout, how long crash debris is left alone. A live request moves a byte at
 * least every idle timeout, but an object it wrote may stay untouched longer: a temporary file
 * fills a 1 MiB buffer before each write, and a monolithic upload's object waits for its commit
 * (on S3, a server-side copy of the whole blob). This process's own uploads are known and never
 * swept; the margin is for another replica's.
 */
const DEBRIS_MARGIN_SECONDS = 15 * 60;

/** How old crash debris must be before it is removed (at start-up and by every collection). */
export function debrisAgeMs(config: Config): number {
  return (config.http.idletimeout + DEBRIS_MARGIN_SECONDS) * 1000;
}

export function gcOptions(config: Config, overrides: Partial<GcOptions> = {}): GcOptions {
  return {
    graceMs: config.gc.grace * 1000,
    uploadAgeMs: config.storage.maintenance.uploadpurging.age * 1000,
    debrisAgeMs: debrisAgeMs(config),
    deleteUntagged: config.gc.deleteuntagged,
    dryRun: false,
    ...overrides,
  };
}

export interface GcScheduler {
  stop(): void;
}

/** Runs collection every `config.gc.interval` seconds on one replica at a time. */
export function startGcScheduler(options: {
  runs: MaintenanceRuns;
  gc: GarbageCollector;
  config: Config;
  log: Logger;
  onReport?: (report: GcReport) => void;
}): GcScheduler {
  const { runs, gc, config, log } = options;
  const interval = config.gc.interval;
  let running = false;
  const tick = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      if (!(await runs.claim('gc', interval))) return;
      const report = await gc.run(gcOptions(config));
      await runs.finish('gc', report);
      options.onReport?.(report);
      log.info({ report }, 'scheduled garbage collection finished');
    } catch (err) {
      log.error({ err }, 'scheduled garbage collection failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), Math.min(interval, 60) * 1000);
  timer.unref();
  void tick();
  return { stop: () => clearInterval(timer) };
}
