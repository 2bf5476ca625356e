// Tells every replica what changed, so in-memory caches (tags, manifests, projects, trusted keys,
// gate decisions) are only accelerators: a write on one replica drops the stale entries on all.
// On PostgreSQL this is LISTEN/NOTIFY on one channel; the embedded PGlite serves one process, so
// there the bus only reaches local subscribers. A replica that loses its listening connection
// drops all its caches when it reconnects, since it may have missed changes meanwhile.
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
  /** Set for PostgreSQL: the connection string the listener uses. */
  connectionString?: string;
  onError?: (err: unknown) => void;
}

export function createChangeBus(options: ChangeBusOptions): ChangeBus {
  const listeners: ChangeListener[] = [];
  const emit = (change: Change | 'all'): void => {
    for (const listener of listeners) listener(change);
  };
  let closed = false;
  let client: pg.Client | undefined;
  let retry: NodeJS.Timeout | undefined;

  async function listen(): Promise<void> {
    if (closed || !options.connectionString) return;
    const { Client } = await loadPg();
    if (closed) return;
    const next = new Client({ connectionString: options.connectionString });
    next.on('notification', (message) => {
      if (message.channel !== CHANNEL || !message.payload) return;
      try {
        emit(JSON.parse(message.payload) as Change);
      } catch {
        emit('all');
      }
    });
    next.on('error', (err) => {
      options.onError?.(err);
      reconnect();
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${CHANNEL}`);
      client = next;
      emit('all'); // whatever happened while we were not listening
    } catch (err) {
      options.onError?.(err);
      await next.end().catch(() => undefined);
      reconnect();
    }
  }

  function reconnect(): void {
    if (closed || retry) return;
    const old = client;
    client = undefined;
    void old?.end().catch(() => undefined);
    retry = setTimeout(() => {
      retry = undefined;
      void listen();
    }, 1000);
    retry.unref();
  }

  void listen();

  return {
    publish(change) {
      emit(change);
      if (options.connectionString) {
        options.db.query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify(change)]).catch((err: unknown) => options.onError?.(err));
      }
    },
    subscribe(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => undefined);
    },
  };
}
