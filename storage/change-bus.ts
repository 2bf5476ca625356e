// Tells every replica what changed, so in-memory caches (tags, manifests, projects, trusted keys,
// gate decisions) are only accelerators: a write on one replica drops the stale entries on all.
// On PostgreSQL this is LISTEN/NOTIFY on one channel; the embedded PGlite serves one process, so
// there the bus only reaches local subscribers. A replica that loses its listening connection
// drops all its caches when it reconnects, since it may have missed changes meanwhile. A connection
// that went silent (a stalled proxy, a peer gone without a word) is found by a periodic query.
//
// That query is a ping: a notice the listening connection sends itself. PostgreSQL delivers notices
// in the order their transactions committed, so when a ping comes back every change committed
// before it was sent has been heard (the database sends the notices of tags, manifests and blob
// links itself, inside the writing transaction: storage/migrations/012_change_notices.postgres.sql).
// `confirmedAt` is when the newest ping that came back was sent: what caches may trust as of then.
import { randomUUID } from 'node:crypto';
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
  /**
   * When (performance.now()) the newest ping that came back was sent: every change committed before
   * then has reached the listeners. Undefined until one came back, and always on PGlite, where no
   * other process writes.
   */
  confirmedAt(): number | undefined;
  close(): Promise<void>;
}

export interface ChangeBusOptions {
  db: Db;
  /** Set for PostgreSQL: how the listener connects (connection string, timeouts). */
  connection?: pg.ClientConfig;
  /** Told when the listening connection is lost (with why) and when it listens again. */
  onStateChange?: (listening: boolean, err?: unknown) => void;
  /** How often the listening connection pings itself. Default 1 s. */
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
  // Pings on their way: number → when sent. Only this bus's come back with its id.
  const id = randomUUID();
  let pings = 0;
  const pending = new Map<number, number>();
  let confirmed: number | undefined;
  const pingReturned = (seq: number): void => {
    const sentAt = pending.get(seq);
    if (sentAt === undefined) return;
    confirmed = sentAt;
    for (const earlier of pending.keys()) {
      pending.delete(earlier);
      if (earlier === seq) break;
    }
  };
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
      let change: Change & { ping?: unknown };
      try {
        change = JSON.parse(message.payload) as Change & { ping?: unknown };
      } catch {
        emit('all');
        return;
      }
      // A ping: this bus's own, or another replica's (nothing changed).
      if (change.ping !== undefined) {
        if (client === next && typeof change.ping === 'string' && change.ping.startsWith(`${id}:`)) {
          pingReturned(Number(change.ping.slice(id.length + 1)));
        }
        return;
      }
      emit(change);
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
    pending.clear();
    void old?.end().catch(() => undefined);
    retry = setTimeout(() => {
      retry = undefined;
      void listen();
    }, 1000);
    retry.unref();
  }

  // The connection whose ping has not been answered yet: no second query is queued behind it.
  // While the connection is silent, each beat queued one more, which pg deprecates (and pg 9
  // removes); the one in flight times out (query_timeout), and then the connection is replaced.
  let pinging: typeof client;
  const heartbeat = options.connection
    ? setInterval(() => {
        const current = client;
        if (!current || pinging === current) return;
        pinging = current;
        const seq = ++pings;
        pending.set(seq, performance.now());
        // Pings that never came back (a connection that went silent) are forgotten in time.
        if (pending.size > 64) pending.delete(pending.keys().next().value!);
        current
          .query('SELECT pg_notify($1, $2)', [CHANNEL, JSON.stringify({ ping: `${id}:${seq}` })])
          .catch((err: unknown) => {
            if (client === current) reconnect(err);
          })
          .finally(() => {
            if (pinging === current) pinging = undefined;
          });
      }, options.heartbeatMs ?? 1000)
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
    confirmedAt: () => confirmed,
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      if (heartbeat) clearInterval(heartbeat);
      await client?.end().catch(() => undefined);
    },
  };
}
