// Tells every replica what changed, so in-memory caches (tags, manifests, projects, trusted keys,
// gate decisions) are only accelerators: a write on one replica drops the stale entries on all.
// On PostgreSQL this is LISTEN/NOTIFY on one channel; the embedded PGlite serves one process, so
// there the bus only reaches local subscribers. A replica that loses its listening connection
// drops all its caches when it reconnects, since it may have missed changes meanwhile. A connection
// that went silent (a stalled proxy, a peer gone without a word) is found by a periodic query.
import type pg from 'pg';
import { loadPg, type Db } from './db.js';

const CHANNEL = 'signet_changes';

export interface Change {
  /** A repository's tags, manifests, blob links or signatures changed. */
  repository?: string;
  /** A project's settings, members or keys changed. */
  project?: string;
}

export type ChangeListener = (change: Change | 'all') => void;

export interface ChangeBus {
  /** Tells local listeners at once and other replicas through the database. */
  publish(change: Change): void;
  subscribe(listener: ChangeListener): void;
  close(): Promise<void>;
}

export interface ChangeBusOptions {
  db: Db;
  /** Set for PostgreSQL: how the listener connects (connection string, timeouts). */
  connection?: pg.ClientConfig;
  /** Told when the listening connection is lost (with why) and when it listens again. */
  onStateChange?: (listening: boolean, err?: unknown) => void;
  /** How often the listening connection is checked with a query. Default 30 s. */
  heartbeatMs?: number;
}

export function createChangeBus(options: ChangeBusOptions): ChangeBus {
  const listeners: ChangeListener[] = [];
  const emit = (change: Change | 'all'): void => {
    for (const listener of listeners) listener(change);
  };
  let closed = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  // Told once per change of state, not once per failed attempt while the database is away.
  let listening: boolean | undefined;
  const setState = (now: boolean, err?: unknown): void => {
    if (now === listening) return;
    const before = listening;
    listening = now;
    // Starting up without a database is one loss; the first connection is no recovery.
    if (now && before === undefined) return;
    options.onStateChange?.(now, err);
  };

  async function listen(): Promise<void> {
    if (closed || !options.connection) return;
    const { Client } = await loadPg();
    if (closed) return;
    const next = new Client({ keepAlive: true, ...options.connection });
    next.on('notification', (message) => {
      if (message.channel !== CHANNEL || !message.payload) return;
      try {
        emit(JSON.parse(message.payload) as Change);
      } catch {
        emit('all');
      }
    });
    next.on('error', (err) => {
      if (client === next) reconnect(err);
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${CHANNEL}`);
      if (closed) {
        await next.end().catch(() => undefined);
        return;
      }
      client = next;
      setState(true);
      emit('all'); // whatever happened while we were not listening
    } catch (err) {
      await next.end().catch(() => undefined);
      reconnect(err);
    }
  }

  function reconnect(err: unknown): void {
    if (closed || retry) return;
    setState(false, err);
    const old = client;
    client = undefined;
    void old?.end().catch(() => undefined);
    retry = setTimeout(() => {
      retry = undefined;
      void listen();
    }, 1000);
    retry.unref();
  }

  const heartbeat = options.connection
    ? setInterval(() => {
        const current = client;
        current?.query('SELECT 1').catch((err: unknown) => {
          if (client === current) reconnect(err);
        });
      }, options.heartbeatMs ?? 30_000)
    : undefined;
  heartbeat?.unref();

  void listen();

  return {
    publish(change) {
      emit(change);
      // A failure here is the database's, and the database layer reports it.
      if (options.connection) options.db.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(change)]).catch(() => undefined);
    },
    subscribe(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      if (heartbeat) clearInterval(heartbeat);
      await client?.end().catch(() => undefined);
    },
  };
}
