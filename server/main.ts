#!/usr/bin/env node
// `signet`: the command-line tool. The only module with side effects: read configuration, build the
// registry, listen, and shut down cleanly on SIGTERM / SIGINT.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Command } from 'commander';
import { ConfigError, loadConfig, parseAddr, type Config } from './config.js';
import { createLogger } from './logging.js';
import { createRegistry } from './registry.js';

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
  const callback = registry.app.callback();
  const server = config.http.tls
    ? https.createServer(
        { cert: readFileSync(config.http.tls.certificate), key: readFileSync(config.http.tls.key) },
        callback,
      )
    : http.createServer(callback);
  // Large layers over slow links take long: no whole-request deadline, but headers must come soon.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;

  const { host, port } = parseAddr(config.http.addr);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const address = server.address() as AddressInfo;
  log.info(
    {
      addr: `${address.address}:${address.port}`,
      tls: Boolean(config.http.tls),
      database: registry.db.kind,
      storage: config.storage.filesystem.rootdirectory,
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
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
program.name('signet').description('OCI container registry with an integrated signature store').version(pkg.version);
program
  .command('serve')
  .description('run the registry (settings from REGISTRY_* variables and an optional YAML file)')
  .argument('[config]', 'YAML configuration file, as for the Go registry')
  .action(serve);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`signet: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
