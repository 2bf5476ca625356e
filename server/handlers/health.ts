// /healthz: the process answers. /readyz: the database and the blob store answer too, so a load
// balancer only sends traffic to replicas that can serve it.
import type { Db } from '../../storage/db.js';
import type { BlobStore } from '../../storage/blob-store.js';
import type { Ctx } from '../context.js';
import { OciError } from '../errors.js';

export function createHealthHandlers(db: Db, store: BlobStore) {
  return {
    live(ctx: Ctx): void {
      ctx.body = { status: 'ok' };
    },
    async ready(ctx: Ctx): Promise<void> {
      const checks = await Promise.allSettled([db.query('SELECT 1'), store.stat('blobs/health-probe')]);
      const failed = checks.flatMap((c, i) => (c.status === 'rejected' ? [i === 0 ? 'database' : 'storage'] : []));
      if (failed.length > 0) {
        ctx.state.log.warn({ failed }, 'readiness check failed');
        throw new OciError('UNAVAILABLE', `not ready: ${failed.join(', ')} unreachable`, { failed });
      }
      ctx.body = { status: 'ready' };
    },
  };
}
