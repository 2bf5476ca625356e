// Builds a registry from a validated configuration: database (PostgreSQL or embedded PGlite) with
// migrations applied, blob store, metadata store with its cache, the Koa app. No listening here.
import path from 'node:path';
import type Koa from 'koa';
import { createBasicAuthenticator, createNoAuthenticator, type Authenticator } from '../auth/authenticator.js';
import { createOpenAuthorizer, createProjectAuthorizer, type Authorizer } from '../auth/authorize.js';
import { createHtpasswd } from '../auth/htpasswd.js';
import { createCachedProjectStore, createPostgresProjectStore, type ProjectStore } from '../storage/project-store.js';
import { createBlobs } from '../storage/blobs.js';
import { createCachedMetadataStore } from '../storage/cached-metadata-store.js';
import { createPgliteDb, createPostgresDb, type Db } from '../storage/db.js';
import { createFilesystemBlobStore } from '../storage/filesystem-blob-store.js';
import { migrate } from '../storage/migrate.js';
import { createPostgresMetadataStore } from '../storage/postgres-metadata-store.js';
import { createKeyStore } from '../sigstore/key-store.js';
import { createSignatureStore } from '../sigstore/signature-store.js';
import { createSignatures } from '../sigstore/signatures.js';
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
  const projects = createCachedProjectStore(createPostgresProjectStore(db), config.cache.ttl * 1000);
  const { authenticator, authorizer } = createAuth(config, projects, log);
  const keys = createKeyStore(db, { cacheTtlMs: config.cache.ttl * 1000 });
  const deps: RegistryDeps = {
    config,
    db,
    store,
    blobs: createBlobs(store),
    metadata,
    projects,
    keys,
    signatures: createSignatures(createSignatureStore(db), keys),
    authenticator,
    authorizer,
    log,
  };
  return {
    app: createApp(deps),
    deps,
    db,
    close: () => metadata.close(),
  };
}

function createAuth(config: Config, projects: ProjectStore, log: Logger): { authenticator: Authenticator; authorizer: Authorizer } {
  const htpasswdConfig = config.auth.htpasswd;
  if (!htpasswdConfig) {
    log.warn('authentication is off: anyone who reaches this registry can push, pull and delete (set REGISTRY_AUTH=htpasswd)');
    return { authenticator: createNoAuthenticator(), authorizer: createOpenAuthorizer() };
  }
  const htpasswd = createHtpasswd({
    path: htpasswdConfig.path,
    onReload: (users) => log.info({ path: htpasswdConfig.path, users }, 'loaded htpasswd file'),
    onError: (err) => log.error({ err, path: htpasswdConfig.path }, 'cannot read htpasswd file: every login fails'),
  });
  return {
    authenticator: createBasicAuthenticator(htpasswd, htpasswdConfig.realm),
    authorizer: createProjectAuthorizer({
      projects,
      admins: new Set(config.auth.admins),
      autocreate: config.projects.autocreate,
    }),
  };
}
