// Builds a registry from a validated configuration: database (PostgreSQL or embedded PGlite) with
// migrations applied, blob store, metadata store with its cache, the Koa app. No listening here.
import path from 'node:path';
import type Koa from 'koa';
import { createOpenAuthorizer } from '../auth/authorize.js';
import { createBlobs } from '../storage/blobs.js';
import { createCachedMetadataStore } from '../storage/cached-metadata-store.js';
import { createPgliteDb, createPostgresDb, type Db } from '../storage/db.js';
import { createFilesystemBlobStore } from '../storage/filesystem-blob-store.js';
import { migrate } from '../storage/migrate.js';
import { createPostgresMetadataStore } from '../storage/postgres-metadata-store.js';
import { createApp } from './app.js';
import type { Config } from './config.js';
import type { RegistryDeps, RequestState } from './context.js';
import type { Logger } from './logging.js';

export interface Registry {
  app: Koa<RequestState>;
  deps: RegistryDeps;
  db: Db;
  close(): Promise<void>;
}

export async function openDatabase(config: Config): Promise<Db> {
  return config.database.url
    ? createPostgresDb(config.database.url, { max: config.database.pool.max })
    : createPgliteDb(path.resolve(config.database.datadirectory));
}

export async function createRegistry(config: Config, log: Logger): Promise<Registry> {
  const db = await openDatabase(config);
  try {
    const applied = await migrate(db);
    if (applied.length > 0) log.info({ migrations: applied }, 'applied database migrations');
  } catch (err) {
    await db.close();
    throw err;
  }
  const store = createFilesystemBlobStore({ rootDirectory: config.storage.filesystem.rootdirectory });
  const metadata = createCachedMetadataStore(createPostgresMetadataStore(db), { ttlMs: config.cache.ttl * 1000 });
  const deps: RegistryDeps = {
    config,
    db,
    store,
    blobs: createBlobs(store),
    metadata,
    authorizer: createOpenAuthorizer(),
    log,
  };
  return {
    app: createApp(deps),
    deps,
    db,
    close: () => metadata.close(),
  };
}
