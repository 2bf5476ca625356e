// GET /api/v1/status (registry admins): what this replica runs on, for the console's
// administration page: version, storage back end, database, read-only mode, dependency outages.
import { readFileSync } from 'node:fs';
import { requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { describeStorage } from '../registry.js';

function packageVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'signet' && pkg.version) return pkg.version;
    } catch {
      // not there: the other layout (sources or dist/)
    }
  }
  return 'unknown';
}

export function createStatusHandler(deps: Pick<RegistryDeps, 'config' | 'availability' | 'authorizer'> & { databaseKind: 'postgres' | 'pglite' }) {
  const version = packageVersion();
  return async (ctx: Ctx): Promise<void> => {
    await requireAccess(ctx, deps, 'maintain', '');
    const outages = Object.fromEntries(
      (['database', 'storage', 'notifications'] as const).flatMap((name) => {
        const outage = deps.availability.outage(name);
        return outage ? [[name, { reason: outage.reason, since: outage.since.toISOString() }]] : [];
      }),
    );
    ctx.set('Cache-Control', 'no-store');
    ctx.body = {
      version,
      node: process.version,
      storage: describeStorage(deps.config),
      database: deps.databaseKind === 'postgres' ? 'postgresql' : 'embedded (PGlite)',
      readOnly: deps.config.storage.maintenance.readonly.enabled,
      signedOnlyCacheSeconds: deps.config.cache.ttl,
      uptimeSeconds: Math.round(process.uptime()),
      outages,
    };
  };
}
