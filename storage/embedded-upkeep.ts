// The embedded database's autovacuum. PGlite is PostgreSQL in single-user mode, where the
// autovacuum launcher never runs: nothing ever vacuumed or analysed its tables. Every blob push
// inserts and deletes an upload row, so `uploads` and its index only grew (3,000 pushes: 280 KB for
// no live row), and the planner worked from whatever the statistics were when a table was empty.
// This does what autovacuum would, with its default thresholds: a table is vacuumed once its dead
// rows exceed 50 + 20 % of its rows, analysed once its changed rows since the last analysis
// exceed 50 + 10 %. A pass is a query of the statistics every minute (autovacuum_naptime), and a
// VACUUM (ANALYZE) of the tables past a threshold. While it runs the one session does nothing else,
// so statements wait: a table vacuumed often has little to do each time (its visibility map skips
// every page untouched since), and one of 3,500 rows took ~0.3 s with all the others.
import type { Queryable } from './db.js';

export interface EmbeddedUpkeepOptions {
  /** Between passes (default a minute, as autovacuum_naptime). */
  intervalMs?: number;
  /** Told what a pass did, or why it failed. */
  onPass?: (report: { tables: string[]; ms: number }) => void;
  onError?: (err: unknown) => void;
}

/** Tables past autovacuum's default thresholds, each with the statement that brings it back. */
const DUE = `
SELECT format('VACUUM (ANALYZE) %I.%I', s.schemaname, s.relname) AS statement, s.relname AS name
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)
   OR s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
ORDER BY s.relname`;

export function startEmbeddedUpkeep(
  db: Queryable,
  options: EmbeddedUpkeepOptions = {},
): { pass(): Promise<string[]>; stop(): Promise<void> } {
  let stopped = false;
  let running: Promise<unknown> = Promise.resolve();

  async function pass(): Promise<string[]> {
    const started = performance.now();
    const due = await db.query<{ statement: string; name: string }>(DUE);
    const done: string[] = [];
    for (const table of due) {
      if (stopped) break;
      await db.query(table.statement);
      done.push(table.name);
    }
    if (done.length > 0) options.onPass?.({ tables: done, ms: Math.round(performance.now() - started) });
    return done;
  }

  /** Runs a pass after any under way: never two at once, the timer's or a caller's. */
  function queue(): Promise<string[]> {
    const next = running.then(pass);
    running = next.catch(() => undefined);
    return next;
  }

  const timer = setInterval(() => {
    queue().catch((err: unknown) => options.onError?.(err));
  }, options.intervalMs ?? 60_000);
  timer.unref();

  return {
    pass: queue,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running.catch(() => undefined);
    },
  };
}
