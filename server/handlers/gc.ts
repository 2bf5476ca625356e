// POST /api/v1/gc (what `signet gc` calls; registry admins only): streams progress as NDJSON and
// ends with the report.
import { PassThrough } from 'node:stream';
import * as z from 'zod';
import { requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { gcOptions, recordGc } from '../gc-runner.js';
import { readJsonBody } from '../request-body.js';

/**
 * What `signet gc` may ask for. Strict: a misspelt `dryRun` must not run a real collection. The
 * grace is capped (about 31 years) so that it stays a date.
 */
const GC_BODY = z.strictObject({
  dryRun: z.boolean().optional(),
  deleteUntagged: z.boolean().optional(),
  graceSeconds: z.number().nonnegative().max(1e9).optional(),
});

export function createGcHandler(deps: Pick<RegistryDeps, 'gc' | 'config' | 'metrics' | 'authorizer'>) {
  const { gc } = deps;
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
