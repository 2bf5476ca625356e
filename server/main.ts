#!/usr/bin/env node
// `signet`: the command-line tool. The only module with side effects: read configuration, build the
// registry, listen, and shut down cleanly on SIGTERM / SIGINT.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ApiCallError, createApiClient, registerAdminCommands, registerSignatureCommands } from './admin-cli.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createHttpServer, listen } from './listen.js';
import { createLogger } from './logging.js';
import { createRegistry, describeStorage } from './registry.js';

async function serve(configFile: string | undefined): Promise<void> {
  let config: Config;
  try {
    config = loadConfig({ env: process.env, ...(configFile ? { file: configFile } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`signet: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.log.level);
  const registry = await createRegistry(config, log);
  const server = createHttpServer(config, registry.app.callback());
  const address = await listen(server, config.http.addr);
  log.info(
    {
      addr: `${address.address}:${address.port}`,
      tls: Boolean(config.http.tls),
      database: registry.db.kind,
      storage: describeStorage(config),
    },
    'signet is listening',
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => server.closeAllConnections(), 25_000).unref();
    server.close(() => {
      clearTimeout(force);
      registry
        .close()
        .catch((err: unknown) => log.error({ err }, 'closing the database failed'))
        .finally(() => {
          log.flush();
          process.exit(0);
        });
    });
    server.closeIdleConnections();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

const program = new Command();
// dist/server/main.js when built, server/main.ts when run from source.
const pkgUrl = new URL(import.meta.url.includes('/dist/') ? '../../package.json' : '../package.json', import.meta.url);
const pkg = JSON.parse(readFileSync(pkgUrl, 'utf8')) as { version: string };
program.name('signet').description('OCI container registry with an integrated signature store').version(pkg.version);
// The management commands are HTTP clients: their settings are a client's, not the server's.
program
  .option('--registry <url>', 'registry for management commands (SIGNET_REGISTRY)', process.env.SIGNET_REGISTRY ?? 'http://localhost:5000')
  .option('--user <name>', 'user for management commands (SIGNET_USER; password in SIGNET_PASSWORD)', process.env.SIGNET_USER)
  .option('--password-stdin', 'read the password from standard input');
const apiClient = () => {
    const opts = program.opts<{ registry: string; user?: string; passwordStdin?: boolean }>();
    const password = opts.passwordStdin ? readFileSync(0, 'utf8').replace(/\r?\n$/, '') : process.env.SIGNET_PASSWORD;
  return createApiClient({ registry: opts.registry, ...(opts.user ? { user: opts.user } : {}), ...(password ? { password } : {}) });
};
const print = (line: string): void => void process.stdout.write(`${line}\n`);
registerAdminCommands(program, apiClient, print);
registerSignatureCommands(program, apiClient, print);

program
  .command('serve')
  .description('run the registry (settings from REGISTRY_* variables and an optional YAML file)')
  .argument('[config]', 'YAML configuration file, as for the Go registry')
  .action(serve);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ApiCallError) {
    process.stderr.write(`signet: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`signet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
