// /healthz: the process answers. /readyz: the database and the blob storage answer too, so a load
// balancer only sends traffic to replicas that can serve it; when not, it says which one does not
// and why in a fixed phrase ("connection refused", "timed out", "bucket missing"), never a host,
// port or bucket name (the endpoint is unauthenticated). The log has the details.
import { DependencyUnavailableError, StorageFullError } from '../../storage/errors.js';
import { jsonBody, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';

/** The fixed phrase for a failed check; other failures are logged with their details. */
function reasonOf(err: unknown): string {
  if (err instanceof DependencyUnavailableError) return err.reason;
  if (err instanceof StorageFullError) return 'full';
  return 'error';
}

export function createHealthHandlers(deps: Pick<RegistryDeps, 'database' | 'blobs' | 'availability'>) {
  const { database: db, blobs, availability } = deps;

  /** 'ok', or the fixed phrase of why not. */
  async function check(name: string, probe: () => Promise<unknown>, ctx: Ctx): Promise<string> {
    try {
      await probe();
      return 'ok';
    } catch (err) {
      const reason = reasonOf(err);
      if (reason === 'error') ctx.state.log.error({ err, dependency: name }, 'readiness check failed');
      return reason;
    }
  }

  return {
    live(ctx: Ctx): void {
      jsonBody(ctx, { status: 'ok' });
    },
    async ready(ctx: Ctx): Promise<void> {
      const [database, storage] = await Promise.all([check('database', () => db.ping(), ctx), check('storage', () => blobs.probe(), ctx)]);
      // Only between replicas on PostgreSQL; not a reason to take a replica out (caches expire).
      const notifications = db.kind === 'postgres' ? (availability.outage('notifications') ? 'reconnecting' : 'ok') : undefined;
      const checks = { database, storage, ...(notifications ? { notifications } : {}) };
      const failed = Object.entries({ database, storage }).filter(([, state]) => state !== 'ok');
      if (failed.length > 0) {
        throw new OciError('UNAVAILABLE', `not ready: ${failed.map(([name, state]) => `${name} ${state}`).join(', ')}`, checks);
      }
      jsonBody(ctx, { status: 'ready', ...checks });
    },
  };
}
