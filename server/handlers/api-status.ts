// GET /api/v1/status (registry admins): what this replica runs on, for the console's
// administration page: version, storage back end, database, read-only mode, dependency outages.
import { requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { describeStorage } from '../config.js';
import { signetVersion } from '../version.js';

/** A replica counts as seen when its heartbeat (every 30 s) is this recent. */
const REPLICA_SEEN_MS = 2 * 60 * 1000;

export function createStatusHandler(deps: Pick<RegistryDeps, 'config' | 'availability' | 'authorizer' | 'replicas' | 'database'>) {
  const version = signetVersion();
  return async (ctx: Ctx): Promise<void> => {
    await requireAccess(ctx, deps, 'maintain', '');
    const outages = Object.fromEntries(
      (['database', 'storage', 'notifications'] as const).flatMap((name) => {
        const outage = deps.availability.outage(name);
        return outage ? [[name, { reason: outage.reason, since: outage.since.toISOString() }]] : [];
      }),
    );
    ctx.set('Cache-Control', 'no-store');
    jsonBody(ctx, {
      version,
      node: process.version,
      storage: describeStorage(deps.config),
      database: deps.database.kind === 'postgres' ? 'postgresql' : 'embedded (PGlite)',
      readOnly: deps.config.storage.maintenance.readonly.enabled,
      signedOnlyCacheSeconds: deps.config.cache.ttl,
      uptimeSeconds: Math.round(process.uptime()),
      outages,
      replicas: (await deps.replicas.list(REPLICA_SEEN_MS)).map((r) => ({
        host: r.host,
        version: r.version,
        startedAt: r.startedAt.toISOString(),
        seenAt: r.seenAt.toISOString(),
      })),
    });
  };
}
