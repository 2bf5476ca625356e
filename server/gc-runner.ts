// Garbage collection from the outside: POST /api/v1/gc (what `signet gc` calls; registry admins
// only) streams progress as NDJSON and ends with the report, and a scheduler runs it every
// REGISTRY_GC_INTERVAL. Replicas share the schedule through one database row, so one of them runs
// each period.
import { PassThrough } from 'node:stream';
import { z } from 'zod';
import type { GarbageCollector, GcOptions, GcReport } from '../storage/gc.js';
import type { Db } from '../storage/db.js';
import type { Config } from './config.js';
import { requireAccess, type Ctx, type RegistryDeps } from './context.js';
import type { Logger } from './logging.js';
import type { Metrics } from './metrics.js';
import { readJsonBody } from './request-body.js';

/**
 * What `signet gc` may ask for. Strict: a misspelt `dryRun` must not run a real collection. The
 * grace is capped (about 31 years) so that it stays a date.
 */
const GC_BODY = z.strictObject({
  dryRun: z.boolean().optional(),
  deleteUntagged: z.boolean().optional(),
  graceSeconds: z.number().nonnegative().max(1e9).optional(),
});

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

export function createGcHandler(deps: RegistryDeps, gc: GarbageCollector) {
  return async function runGc(ctx: Ctx): Promise<void> {
    await requireAccess(ctx, deps, 'maintain', '');
    const { dryRun, deleteUntagged, graceSeconds } = await readJsonBody(ctx, GC_BODY, { limit: 4096, empty: {} });
    const out = new PassThrough();
    const line = (value: unknown): void => void out.write(`${JSON.stringify(value)}\n`);
    let lastProgress = 0;
    const options = gcOptions(deps.config, {
      ...(dryRun !== undefined ? { dryRun } : {}),
      ...(deleteUntagged !== undefined ? { deleteUntagged } : {}),
      ...(graceSeconds !== undefined ? { graceMs: graceSeconds * 1000 } : {}),
      onProgress: (progress) => {
        const now = Date.now();
        if (now - lastProgress < 200 && progress.done !== progress.total) return;
        lastProgress = now;
        line({ progress });
      },
    });
    ctx.status = 200;
    ctx.type = 'application/x-ndjson';
    ctx.body = out;
    const log = ctx.state.log;
    log.info({ dryRun: options.dryRun, deleteUntagged: options.deleteUntagged, graceMs: options.graceMs }, 'garbage collection started');
    gc.run(options)
      .then((report) => {
        log.info({ report }, 'garbage collection finished');
        recordGc(deps.metrics, report);
        line({ report });
      })
      .catch((err: unknown) => {
        log.error({ err }, 'garbage collection failed');
        line({ error: (err as Error).message });
      })
      .finally(() => out.end());
  };
}

export interface GcScheduler {
  stop(): void;
}

/** Runs collection every `config.gc.interval` seconds on one replica at a time. */
export function startGcScheduler(options: { db: Db; gc: GarbageCollector; config: Config; log: Logger; onReport?: (report: GcReport) => void }): GcScheduler {
  const { db, gc, config, log } = options;
  const interval = config.gc.interval;
  let running = false;
  const tick = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const claimed = await db.query(
        `INSERT INTO maintenance_runs (name, started_at) VALUES ('gc', now())
         ON CONFLICT (name) DO UPDATE SET started_at = now(), finished_at = NULL, report = NULL
         WHERE maintenance_runs.started_at < now() - make_interval(secs => $1) RETURNING name`,
        [interval],
      );
      if (claimed.length === 0) return;
      const report = await gc.run(gcOptions(config));
      await db.query(`UPDATE maintenance_runs SET finished_at = now(), report = $1 WHERE name = 'gc'`, [JSON.stringify(report)]);
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
