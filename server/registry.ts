// Builds a registry from a validated configuration: database (PostgreSQL or embedded PGlite) with
// migrations applied, blob store, metadata store with its cache, the Koa app. No listening here.
import path from 'node:path';
import type Koa from 'koa';
import { createAuthenticator, createNoAuthenticator, type Authenticator } from '../auth/authenticator.js';
import { createOpenAuthorizer, createProjectAuthorizer, withTokenGrants, type Authorizer } from '../auth/authorize.js';
import { createHtpasswd } from '../auth/htpasswd.js';
import { createRobots, type Robots } from '../auth/robots.js';
import { createTokenService, type TokenService } from '../auth/tokens.js';
import { createPostgresRobotStore } from '../storage/robot-store.js';
import { createPostgresTokenKeyStore } from '../storage/token-key-store.js';
import type { ChangeBus } from '../storage/change-bus.js';
import { createCachedProjectStore, createPostgresProjectStore, type ProjectStore } from '../storage/project-store.js';
import { createBlobs } from '../storage/blobs.js';
import { createCachedMetadataStore } from '../storage/cached-metadata-store.js';
import { createChangeBus } from '../storage/change-bus.js';
import { startEmbeddedUpkeep } from '../storage/embedded-upkeep.js';
import { createGarbageCollector } from '../storage/gc.js';
import { createGuessLimiter, GUESS_LIMIT } from '../auth/guess-limiter.js';
import { createPostgresDb, deferredDb, startPgliteDb, type Db } from '../storage/db.js';
import type { BlobStore } from '../storage/blob-store.js';
import { DependencyUnavailableError, StorageFullError, type AvailabilityListener } from '../storage/errors.js';
import { isValidName } from '../storage/oci-grammar.js';
import { createFilesystemBlobStore } from '../storage/filesystem-blob-store.js';
import { migrate } from '../storage/migrate.js';
import { createPostgresMetadataStore } from '../storage/postgres-metadata-store.js';
import { createKeys } from '../sigstore/keys.js';
import { createPostgresKeyStore } from '../storage/key-store.js';
import { createSignatureStore } from '../storage/signature-store.js';
import { createSessionStore } from '../storage/session-store.js';
import { createAuditLog } from '../storage/audit.js';
import { createReplicaStore, type ReplicaStore } from '../storage/replica-store.js';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { signetVersion } from './version.js';
import { createSignatures } from '../sigstore/signatures.js';
import { createPullGate } from '../sigstore/pull-gate.js';
import { createSignatureArtifacts, createSmallBlobReader } from '../sigstore/signature-artifact.js';
import { createCosignPushes } from '../sigstore/cosign-pushes.js';
import { createPullThrough } from '../mirror/pull-through.js';
import { startMirrorScheduler } from './mirror-scheduler.js';
import { createApp } from './app.js';
import { createAvailability } from './availability.js';
import { describeStorage, publicHosts, type Config } from './config.js';
import { databaseFailure } from './failures.js';
import type { RegistryDeps, RequestState } from './context.js';
import type { Logger } from './logging.js';
import { debrisAgeMs } from './gc-runner.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createQuotaCheck, createQuotaRoom } from './quota.js';
import { createQuotaStore } from '../storage/quota-store.js';

export interface Registry {
  app: Koa<RequestState>;
  deps: RegistryDeps;
  db: Db;
  /**
   * Resolves once the database is open and migrated (and the token signing key loaded): until
   * then the app answers what needs no database and holds the rest. Rejects with the start-up
   * failure, named by its setting.
   */
  ready: Promise<void>;
  close(): Promise<void>;
}

export interface RegistryOptions {
  /** The embedded database process ended on its own: the registry cannot serve any more. */
  onDatabaseLost?: (err: Error) => void;
  /** Between the embedded database's vacuum passes (default a minute; tests shorten it). */
  upkeepIntervalMs?: number;
}

export interface DatabaseOptions extends RegistryOptions {
  /** Told after each statement whether PostgreSQL answered. */
  onAvailability?: AvailabilityListener;
}

/**
 * Starts opening the database: resolves once it is claimed (PostgreSQL: at once; the embedded
 * database: its data directory locked), to `ready`, which resolves once it answers.
 */
export async function startDatabase(config: Config, options: DatabaseOptions = {}): Promise<{ ready: Promise<Db> }> {
  const { url, pool, connecttimeout, querytimeout, preparedstatements } = config.database;
  if (url) {
    return {
      ready: createPostgresDb(url, {
        max: pool.max,
        connectTimeoutMs: connecttimeout * 1000,
        queryTimeoutMs: querytimeout * 1000,
        preparedStatements: preparedstatements,
        ...(options.onAvailability ? { onAvailability: options.onAvailability } : {}),
      }),
    };
  }
  return startPgliteDb(path.resolve(config.database.datadirectory), {
    ...(options.onDatabaseLost ? { onExit: options.onDatabaseLost } : {}),
  });
}

export async function createRegistry(
  config: Config,
  log: Logger,
  metrics: Metrics = createMetrics(),
  options: RegistryOptions = {},
): Promise<Registry> {
  const availability = createAvailability({ log, storage: describeStorage(config), gauge: metrics.dependencyUp });
  // The database opens and migrates while the rest is built (and, on the embedded database, while
  // the server already answers what needs none): statements wait for it (storage/db.ts).
  // A failure is named by its setting (REGISTRY_DATABASE_URL or _DATADIRECTORY), in one line.
  const named = (err: unknown): Error => databaseFailure(config.database, driverError(err));
  const starting = await startDatabase(config, { ...options, onAvailability: availability.report }).catch((err: unknown) => {
    throw named(err);
  });
  const migrated = starting.ready.then(
    async (opened) => {
      try {
        // Migrations and garbage collection may rightly run long: no query timeout for them.
        const applied = await migrate(opened.maintenance ?? opened);
        if (applied.length > 0) log.info({ migrations: applied }, 'applied database migrations');
      } catch (err) {
        await opened.close();
        throw named(err);
      }
      return opened;
    },
    (err: unknown) => {
      throw named(err);
    },
  );
  const db = deferredDb(config.database.url ? 'postgres' : 'pglite', migrated);
  const store = await createBlobStore(config, availability.report).catch(async (err: unknown) => {
    await db.close().catch(() => undefined);
    throw err;
  });
  const blobs = createBlobs(store);
  // A missing or unreadable bucket is named in the log now, not at the first push.
  if (config.storage.s3) void blobs.probe().catch(() => undefined);
  const ttlMs = config.cache.ttl * 1000;
  // Replicas on one PostgreSQL hear each other's changes; PGlite serves a single process.
  const { url, connecttimeout, querytimeout } = config.database;
  const bus = createChangeBus({
    db,
    ...(url
      ? { connection: { connectionString: url, connectionTimeoutMillis: connecttimeout * 1000, query_timeout: querytimeout * 1000 } }
      : {}),
    onStateChange: (listening, err) => availability.notifications(listening, err),
  });
  const metadata = createCachedMetadataStore(
    createPostgresMetadataStore(db),
    // Only this process opens the embedded database, and it drops what each write changes.
    { ttlMs, maxBytes: config.cache.maxsize, soleWriter: db.kind === 'pglite' },
    bus,
  );
  const projects = createCachedProjectStore(createPostgresProjectStore(db), ttlMs, bus);
  const robots = createRobots({
    store: createPostgresRobotStore(db),
    bus,
    cacheTtlMs: ttlMs,
    onTouchError: (err) => log.debug({ err }, 'could not record a robot account use'),
  });
  const auth = createAuth({ config, db, projects, robots, bus, log, metrics });
  const { authenticator, authorizer, tokens } = auth;
  const keys = createKeys(createPostgresKeyStore(db), { cacheTtlMs: ttlMs, bus });
  const signatures = createSignatures(createSignatureStore(db), keys, projects, bus);
  const readBlob = createSmallBlobReader(blobs);
  const gate = createPullGate({
    projects,
    keys,
    signatures,
    metadata,
    artifacts: createSignatureArtifacts(readBlob),
    readBlob,
    cacheTtlMs: ttlMs,
    bus,
    onDecision: (outcome) => metrics.gateDecisions.inc({ outcome }),
    onVerification: (format) => metrics.gateVerifications.inc({ format }),
  });
  // This process among the replicas sharing the database: its heartbeat row and its quota holds.
  const replica = { id: randomUUID(), host: `${os.hostname()} (pid ${process.pid})`, version: signetVersion(), startedAt: new Date() };
  const holds = createQuotaStore(db, replica.id);
  const checkQuota = createQuotaCheck({ projects, holds, log });
  const quotaRoom = createQuotaRoom({ projects, holds });
  const pullThrough = createPullThrough({
    projects,
    metadata,
    blobs,
    signatures,
    log,
    tagTtlMs: config.proxy.tagttl * 1000,
    timeoutMs: config.proxy.timeout * 1000,
    maxBlobBytes: config.proxy.maxblobsize,
    checkQuota,
    quotaRoom,
  });
  const deps: RegistryDeps = {
    config,
    database: db,
    blobs,
    metadata,
    projects,
    checkQuota,
    quotaRoom,
    cosignPushes: createCosignPushes({ keys, projects, readBlob }),
    keys,
    signatures,
    gate,
    pullThrough,
    gc: createGarbageCollector({ db: db.maintenance ?? db, store, blobs, bus }),
    availability,
    authenticator,
    guesses: createGuessLimiter(config.auth.htpasswd?.maxfailures ?? GUESS_LIMIT),
    authorizer,
    robots,
    ...(tokens ? { tokens } : {}),
    log,
    metrics,
    sessions: createSessionStore(db),
    audit: createAuditLog(db),
    replicas: createReplicaStore(db),
  };
  const ready = Promise.all([migrated, auth.ready]).then(() => undefined);
  // The background work starts once the database is there; none of it is needed to serve.
  let background: { stop(): Promise<void> } | undefined;
  const started = ready.then(() => {
    const sweep = sweepDebrisAtStart(deps);
    const mirrorScheduler = config.storage.maintenance.readonly.enabled
      ? undefined
      : startMirrorScheduler({ db, projects, pullThrough, metadata, log, bus });
    const heartbeat = startHeartbeat(deps.replicas, replica, deps);
    const upkeep = startUpkeep(db, deps, options.upkeepIntervalMs);
    background = {
      async stop() {
        mirrorScheduler?.stop();
        heartbeat.stop();
        await upkeep?.stop();
        await sweep.stop();
      },
    };
  });
  started.catch(() => undefined);
  return {
    app: createApp(deps),
    deps,
    db,
    ready,
    async close() {
      await started.catch(() => undefined);
      await background?.stop();
      await bus.close();
      await metadata.close();
    },
  };
}

/**
 * What a crash left behind (temporary files, objects of uploads no session holds) is removed in the
 * background at start-up, once older than any live request could leave it: without waiting for a
 * collection, which may never be scheduled. Not in read-only mode, which promises no writes.
 */
function sweepDebrisAtStart(deps: RegistryDeps): { stop(): Promise<void> } {
  if (deps.config.storage.maintenance.readonly.enabled) return { stop: async () => undefined };
  const controller = new AbortController();
  const done = deps.gc
    .removeDebris({ debrisAgeMs: debrisAgeMs(deps.config), dryRun: false, signal: controller.signal })
    .then((report) => {
      if (report.uploadsRemoved + report.orphanFilesRemoved > 0) deps.log.info({ report }, 'removed crash debris');
    })
    .catch((err: unknown) => {
      if (!controller.signal.aborted) deps.log.warn({ err }, 'could not remove crash debris at start-up');
    });
  return {
    async stop() {
      controller.abort();
      await done;
    },
  };
}

/**
 * This replica's row in `replicas`, written at start and every 30 seconds (for the console's status
 * page). Not in read-only mode, which promises no writes; a failed beat is tried again next time.
 */
function startHeartbeat(
  replicas: ReplicaStore,
  me: Parameters<ReplicaStore['beat']>[0],
  deps: Pick<RegistryDeps, 'config' | 'log'>,
): { stop(): void } {
  if (deps.config.storage.maintenance.readonly.enabled) return { stop: () => undefined };
  const beat = (): void => {
    replicas.beat(me).catch((err: unknown) => deps.log.debug({ err }, 'replica heartbeat failed'));
  };
  beat();
  const timer = setInterval(beat, 30_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}

/**
 * The embedded database's vacuum and analysis (storage/embedded-upkeep.ts), which PostgreSQL's
 * autovacuum does for a server. Not in read-only mode, which promises no writes.
 */
function startUpkeep(db: Db, deps: Pick<RegistryDeps, 'config' | 'log'>, intervalMs?: number): { stop(): Promise<void> } | undefined {
  if (db.kind !== 'pglite' || deps.config.storage.maintenance.readonly.enabled) return undefined;
  return startEmbeddedUpkeep(db, {
    ...(intervalMs === undefined ? {} : { intervalMs }),
    // The session waits while a table is vacuumed: worth an info line when it was long.
    onPass: ({ tables, ms }) => deps.log[ms >= 1000 ? 'info' : 'debug']({ tables, ms }, 'vacuumed and analysed the embedded database'),
    onError: (err) => deps.log.warn({ err }, 'could not vacuum the embedded database'),
  });
}

/** The driver's own error under the registry's reading of it, whose reason start-up reports. */
function driverError(err: unknown): unknown {
  return err instanceof DependencyUnavailableError || err instanceof StorageFullError ? (err.cause ?? err) : err;
}

/** S3 when a storage.s3 section exists (it wins over filesystem settings), else the filesystem. */
export async function createBlobStore(config: Config, onAvailability?: AvailabilityListener): Promise<BlobStore> {
  const s3 = config.storage.s3;
  if (!s3) {
    const { rootdirectory, directio } = config.storage.filesystem;
    return createFilesystemBlobStore({ rootDirectory: rootdirectory, directIo: directio });
  }
  // The S3 client and its dependencies take ~30 MB of memory: loaded only when S3 is configured.
  const { createS3BlobStore } = await import('../storage/s3-blob-store.js');
  return createS3BlobStore({
    bucket: s3.bucket,
    region: s3.region,
    ...(s3.regionendpoint !== undefined ? { regionEndpoint: s3.regionendpoint } : {}),
    secure: s3.secure,
    ...(s3.forcepathstyle !== undefined ? { forcePathStyle: s3.forcepathstyle } : {}),
    ...(s3.accesskey !== undefined && s3.secretkey !== undefined ? { accessKey: s3.accesskey, secretKey: s3.secretkey } : {}),
    rootDirectory: s3.rootdirectory,
    createBucket: s3.createbucket,
    partSize: s3.chunksize,
    idleTimeoutMs: s3.idletimeout * 1000,
    ...(onAvailability ? { onAvailability } : {}),
  });
}

interface AuthDeps {
  config: Config;
  db: Db;
  projects: ProjectStore;
  robots: Robots;
  bus: ChangeBus;
  log: Logger;
  metrics: Metrics;
}

/** The token service's service name: REGISTRY_AUTH_TOKEN_SERVICE, else the first public host name. */
export function tokenServiceName(config: Config): string {
  return config.auth.token?.service ?? publicHosts(config)[0] ?? 'signet';
}

interface Auth {
  authenticator: Authenticator;
  authorizer: Authorizer;
  tokens?: TokenService;
  /** Token mode: resolves once the signing key is loaded. */
  ready?: Promise<void>;
}

function createAuth(deps: AuthDeps): Auth {
  const { config, projects, log, metrics } = deps;
  const htpasswdConfig = config.auth.htpasswd;
  if (!htpasswdConfig) {
    log.warn('authentication is off: anyone who reaches this registry can push, pull and delete (set REGISTRY_AUTH=htpasswd)');
    return { authenticator: createNoAuthenticator(), authorizer: createOpenAuthorizer(projects) };
  }
  const htpasswd = createHtpasswd({
    path: htpasswdConfig.path,
    onReload: (users, dummyCost) => log.info({ path: htpasswdConfig.path, users, dummyCost }, 'loaded htpasswd file'),
    onError: (err) => log.error({ err, path: htpasswdConfig.path }, 'cannot read htpasswd file: every login fails'),
    onCheck: () => metrics.passwordChecks.inc(),
  });
  const authorizer = createProjectAuthorizer({ projects, admins: new Set(config.auth.admins), autocreate: config.projects.autocreate });
  const token = config.auth.token;
  if (!token) {
    return { authenticator: createAuthenticator({ htpasswd, realm: htpasswdConfig.realm, robots: deps.robots }), authorizer };
  }
  const service = tokenServiceName(config);
  const { tokens, ready } = createTokenService({
    keys: createPostgresTokenKeyStore(deps.db),
    authorizer,
    htpasswd,
    robots: deps.robots,
    service,
    issuer: token.issuer,
    ttlSeconds: token.expiration,
    refreshTtlSeconds: token.refreshexpiration,
    isValidName,
  });
  log.info({ service, realm: token.realm ?? '<scheme>://<request host>/token' }, 'token authentication is on');
  return {
    authenticator: createAuthenticator({
      htpasswd,
      realm: htpasswdConfig.realm,
      robots: deps.robots,
      tokens: { service: tokens, challenge: { service, ...(token.realm ? { realm: token.realm } : {}) } },
    }),
    authorizer: withTokenGrants(authorizer),
    tokens,
    ready: ready.catch((err: unknown) => {
      throw databaseFailure(config.database, driverError(err));
    }),
  };
}
