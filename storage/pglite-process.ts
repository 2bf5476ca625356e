// Creates the embedded database's cluster (PostgreSQL's initdb) in a process of its own, started
// by createPgliteDb in storage/db.ts the first time a data directory is used, as
// `node pglite-process.js init <data directory>`. Initdb leaves several hundred MB of WebAssembly
// memory behind that a process cannot give back, so it runs apart and exits; the database then
// runs in a worker thread of the registry (storage/pglite-worker.ts).
import { fsyncTree, openPglite } from './pglite-engine.js';

async function main(): Promise<void> {
  // A terminal's Ctrl-C reaches the whole process group: the registry decides when this ends.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  const [mode, dataDirectory] = process.argv.slice(2);
  if (mode !== 'init' || !dataDirectory) throw new Error('usage: pglite-process init <data directory>');
  // Opening a directory without a cluster creates one; createPgliteDb asks only for such a one.
  await (await openPglite(dataDirectory)).close();
  // initdb wrote the cluster before fsyncs were real: all of it to disk before it is used.
  fsyncTree(dataDirectory);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`embedded database init failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
