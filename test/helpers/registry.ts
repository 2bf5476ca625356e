// Starts the real registry (the same createRegistry the CLI uses) on an ephemeral loopback port
// with its own temporary data directory, and removes everything on close.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig, type Config } from '../../server/config.js';
import { createHttpServer, listen } from '../../server/listen.js';
import { createRegistry, type Registry, type RegistryOptions } from '../../server/registry.js';
import { seedEmbeddedDatabase } from './pglite-template.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

export interface TestRegistry {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** `127.0.0.1:<port>`, as clients name the registry. */
  host: string;
  dataDir: string;
  config: Config;
  registry: Registry;
  close(): Promise<void>;
}

export interface TestRegistryOptions {
  /** 'pglite' (default) or 'postgres' (a fresh database on the real server). */
  database?: 'pglite' | 'postgres';
  /** Extra REGISTRY_* settings. */
  env?: Record<string, string>;
  /** Reuse a data directory (to test restarts); it is then not removed on close. */
  dataDir?: string;
  /** Reuse a PostgreSQL database URL (to test restarts); not dropped on close. */
  databaseUrl?: string;
  /** The registry's logger (default: pino at REGISTRY_LOG_LEVEL, to standard output). */
  log?: pino.Logger;
  /** Passed to createRegistry. */
  registryOptions?: RegistryOptions;
}

export async function startTestRegistry(options: TestRegistryOptions = {}): Promise<TestRegistry> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'signet-test-')));
  let database: TestDatabase | undefined;
  const env: Record<string, string> = {
    REGISTRY_HTTP_ADDR: '127.0.0.1:0',
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dataDir, 'storage'),
    REGISTRY_DATABASE_DATADIRECTORY: path.join(dataDir, 'database'),
    REGISTRY_LOG_LEVEL: process.env.SIGNET_TEST_LOG_LEVEL ?? 'silent',
    ...options.env,
  };
  if (options.databaseUrl) env.REGISTRY_DATABASE_URL = options.databaseUrl;
  else if (options.database === 'postgres') {
    database = await createTestDatabase();
    env.REGISTRY_DATABASE_URL = database.url;
  }
  await seedEmbeddedDatabase(env);
  const config = loadConfig({ env });
  const log = options.log ?? pino({ level: config.log.level });
  const registry = await createRegistry(config, log, undefined, options.registryOptions);
  // Tests start from a registry whose database is open (serve() listens before: server/main.ts).
  await registry.ready.catch(async (err: unknown) => {
    await registry.close().catch(() => undefined);
    throw err;
  });
  const handle = registry.app.callback();
  const server = createHttpServer(config, (req, res) => void handle(req, res));
  const { port } = await listen(server, config.http.addr);
  return {
    url: `${config.http.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    dataDir,
    config,
    registry,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await registry.close();
      await database?.drop();
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
