// `signet serve`: read configuration, build the registry, listen, and shut down cleanly on
// SIGTERM / SIGINT. Loaded by server/main.ts without the management commands' modules: a restart
// answers sooner (issue 22).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, describeStorage, readConfig, type ConfigReading } from './config.js';
import { cannotListen, failureLine } from './failures.js';
import { createHttpServer, drain, listen, trackRequests } from './listen.js';
import { createLogger } from './logging.js';
import { createDebugListener, createMetrics } from './metrics.js';
import { preflight } from './preflight.js';
import { createRegistry } from './registry.js';
import { recordGc, startGcScheduler } from './gc-runner.js';
import { createMaintenanceRuns } from '../storage/maintenance-runs.js';
import { boundOldGeneration } from '../storage/heap-bound.js';

/** Prints a start-up failure in one line and exits: 2 for configuration, 1 for the rest. */
export function refuse(message: string, exitCode: number): never {
  process.stderr.write(`signet: ${message}\n`);
  process.exit(exitCode);
}

function readSettings(configFile: string | undefined): ConfigReading {
  try {
    return readConfig({ env: process.env, ...(configFile ? { file: configFile } : {}) });
  } catch (err) {
    if (err instanceof ConfigError) refuse(err.message, 2);
    throw err;
  }
}

async function listenOn(server: http.Server, variable: string, addr: string): Promise<AddressInfo> {
  try {
    return await listen(server, addr);
  } catch (err) {
    throw cannotListen(variable, addr, err);
  }
}

/**
 * Started by `npm start`: stop when npm goes. npm forwards SIGTERM and SIGINT (the start script
 * `exec`s node, so they reach this process), but a SIGKILLed npm forwards nothing, and the
 * registry would run on, reparented, with nobody to stop it by the PID they know.
 */
function stopWithParent(stop: (reason: string) => void): void {
  if (process.env.npm_lifecycle_event !== 'start') return;
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) stop('npm exited');
  }, 1000).unref();
}

export async function serve(configFile: string | undefined): Promise<void> {
  // libuv runs file system calls on a pool of 4 threads unless told otherwise, and the pool is
  // made on first use, so this must come first. Every blob write ends in an fsync that holds a
  // thread until the disk has the bytes (seconds for a large layer): with 4, a few large pushes
  // would stall every other request's file access, and 16 small pushes would fsync 4 at a time.
  process.env.UV_THREADPOOL_SIZE ??= '16';
  // Garbage in the server's old generation is collected once it grows 8 MB, not 64 (storage/heap-bound.ts).
  boundOldGeneration();
  const { config, notes } = readSettings(configFile);
  const log = createLogger(config.log.level);
  const checked = await preflight(config);
  // Warnings first: an unknown name may be why a file is missing.
  for (const note of [...notes, ...checked.notes]) log[note.level](note.fields, note.msg);
  if (checked.problems.length > 0) {
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    refuse(new ConfigError(checked.problems).message, 2);
  }
  const metrics = createMetrics();
  // Without its database the registry can only fail requests: stop, so a supervisor restarts it.
  let onDatabaseLost = (err: Error): void => {
    log.fatal({ err }, 'the embedded database process ended');
    process.exit(1);
  };
  const registry = await createRegistry(config, log, metrics, { onDatabaseLost: (err) => onDatabaseLost(err) });
  // The database opens and migrates while the server already answers what needs none (GET /v2/,
  // which Kubernetes probes and `docker login` call): the embedded one takes most of a second to
  // start, and connecting to PostgreSQL and checking its migrations took a restart past 0.5 s
  // (issue 22). The rest waits for it, /readyz says it is starting, and one that cannot be used
  // (a wrong URL, a server refusing or unreachable, a broken data directory) stops the registry
  // below: one line naming the setting, exit 1, nothing left listening.
  const requests = trackRequests(registry.app.callback());
  const server = createHttpServer(config, requests.listener);
  // As the Go registry's http.debug: metrics on an address of their own, kept off the public port.
  const debugAddr = config.http.debug.addr;
  const debug = debugAddr ? http.createServer(createDebugListener(metrics, config.http.debug.prometheus.path)) : undefined;
  let address: AddressInfo;
  let debugAddress: AddressInfo | undefined;
  try {
    address = await listenOn(server, 'REGISTRY_HTTP_ADDR', config.http.addr);
    debugAddress = debug && debugAddr ? await listenOn(debug, 'REGISTRY_HTTP_DEBUG_ADDR', debugAddr) : undefined;
  } catch (err) {
    server.close();
    await registry.close().catch(() => undefined);
    throw err;
  }
  log.info(
    {
      addr: `${address.address}:${address.port}`,
      ...(debugAddress ? { debugAddr: `${debugAddress.address}:${debugAddress.port}` } : {}),
      tls: Boolean(config.http.tls),
      database: registry.db.kind,
      storage: describeStorage(config),
      ...(config.storage.maintenance.readonly.enabled ? { readOnly: true } : {}),
    },
    'signet is listening',
  );
  registry.ready.then(
    () => log.debug('database ready'),
    async (err: unknown) => {
      // As a failure before listening: one line on standard error, exit 1, nothing left running.
      server.close();
      debug?.close();
      await registry.close().catch(() => undefined);
      await new Promise<void>((resolve) => log.flush(() => resolve()));
      refuse(failureLine(err), 1);
    },
  );
  const gcScheduler =
    config.gc.interval > 0 && !config.storage.maintenance.readonly.enabled
      ? startGcScheduler({
          runs: createMaintenanceRuns(registry.db),
          gc: registry.deps.gc,
          config,
          log,
          onReport: (report) => recordGc(metrics, report),
        })
      : undefined;

  // SIGTERM: stop accepting, let requests in flight finish within http.draintimeout, then close the
  // database once their handlers are done (a handler whose client was cut off is given a little
  // longer to finish a database write).
  let stopping = false;
  const stop = async (signal: string, exitCode = 0): Promise<void> => {
    if (stopping) return;
    stopping = true;
    gcScheduler?.stop();
    const drainMs = config.http.draintimeout * 1000;
    log.info({ signal, drainTimeout: config.http.draintimeout }, 'shutting down');
    const [drained] = await Promise.all([drain(server, drainMs), debug ? drain(debug, 0) : undefined]);
    if (drained.forced) log.warn({ drainTimeout: config.http.draintimeout }, 'closed connections still open after the drain timeout');
    await Promise.race([requests.settled(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    try {
      await registry.close();
    } catch (err) {
      log.error({ err }, 'closing the database failed');
    }
    log.info('stopped');
    log.flush(() => process.exit(exitCode));
    setTimeout(() => process.exit(exitCode), 2000).unref();
  };
  onDatabaseLost = (err) => {
    log.fatal({ err }, 'the embedded database process ended; stopping');
    void stop('database lost', 1);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  stopWithParent((reason) => void stop(reason));
}
