// Whether the database, the blob storage and the change notifications between replicas answer, as
// the last operation on each found. An outage is logged when it starts and when it ends, one line
// each, however many requests fail in between (each of those answers 503 and is in the access log).
// An outage ends for requests at the first success, but its end is logged only once the dependency
// has answered for a moment: while PostgreSQL shuts down, a pooled connection whose backend has
// not been terminated yet still answers a statement a few milliseconds after another connection
// was lost, and that is not a recovery followed by a second outage.
import type { Gauge } from 'prom-client';
import type { AvailabilityListener, Dependency, DependencyUnavailableError } from '../storage/errors.js';
import type { Logger } from './logging.js';

export type Watched = Dependency | 'notifications';

export interface Outage {
  /** A short phrase safe to show anyone: "connection refused", "timed out", "bucket missing". */
  reason: string;
  since: Date;
}

export interface Availability {
  /** What the database and storage layers call after each operation. */
  report: AvailabilityListener;
  /** What the change bus calls when its listening connection is lost or back. */
  notifications(listening: boolean, err?: unknown): void;
  /** The current outage of a dependency, if any. */
  outage(name: Watched): Outage | undefined;
}

export interface AvailabilityOptions {
  log: Logger;
  /** Fields for the storage lines: driver, endpoint, bucket (never a credential). */
  storage: Record<string, string>;
  /** 1 while a dependency answers, 0 during an outage. */
  gauge?: Gauge<'dependency'>;
  /** How long a dependency must go without a failure before its recovery is logged; 1000 ms. */
  settleMs?: number;
}

const DOWN_MESSAGES: Record<Watched, string> = {
  database: 'database unavailable: requests that need it answer 503 until it is back',
  storage: 'blob storage unavailable: requests that need it answer 503 until it is back',
  notifications: 'change notifications from other replicas interrupted; caches are flushed on reconnect',
};

export function createAvailability(options: AvailabilityOptions): Availability {
  const { log } = options;
  const settleMs = options.settleMs ?? 1000;
  const outages = new Map<Watched, Outage>();
  /** When each outage last ended (Date.now()). */
  const recovered = new Map<Watched, number>();
  /** Outages that have ended for requests but whose end is not logged yet. */
  const settling = new Map<Watched, { outage: Outage; timer: NodeJS.Timeout }>();
  for (const name of ['database', 'storage', 'notifications'] as const) options.gauge?.set({ dependency: name }, 1);

  function down(name: Watched, reason: string, cause: unknown, startedAt?: number): void {
    // A failure of what was sent during the last outage (a connection timing out) starts no new one.
    if (outages.has(name) || (startedAt !== undefined && startedAt <= (recovered.get(name) ?? -Infinity))) return;
    const unsettled = settling.get(name);
    if (unsettled) {
      // Failing again right after it answered: the same outage goes on, and is not logged again.
      clearTimeout(unsettled.timer);
      settling.delete(name);
      outages.set(name, unsettled.outage);
      options.gauge?.set({ dependency: name }, 0);
      return;
    }
    outages.set(name, { reason, since: new Date() });
    options.gauge?.set({ dependency: name }, 0);
    const fields = { dependency: name, reason, cause: describe(cause), ...(name === 'storage' ? options.storage : {}) };
    if (name === 'notifications') log.warn(fields, DOWN_MESSAGES[name]);
    else log.error(fields, DOWN_MESSAGES[name]);
  }

  function up(name: Watched, startedAt?: number): void {
    const outage = outages.get(name);
    // An answer to what was sent before the outage began (in flight as it began) ends nothing.
    if (!outage || (startedAt !== undefined && startedAt <= outage.since.getTime())) return;
    outages.delete(name);
    const now = Date.now();
    recovered.set(name, now);
    options.gauge?.set({ dependency: name }, 1);
    const seconds = Math.round((now - outage.since.getTime()) / 100) / 10;
    const timer = setTimeout(() => {
      settling.delete(name);
      log.info(
        { dependency: name, unavailableSeconds: seconds },
        `${name === 'notifications' ? 'change notifications' : name} available again`,
      );
    }, settleMs);
    timer.unref();
    settling.set(name, { outage, timer });
  }

  return {
    report(dependency, failure?: DependencyUnavailableError, startedAt?: number) {
      if (failure) down(dependency, failure.reason, failure.cause ?? failure, startedAt);
      else up(dependency, startedAt);
    },
    notifications(listening, err) {
      if (listening) up('notifications');
      else down('notifications', 'connection lost', err);
    },
    outage: (name) => outages.get(name),
  };
}

/** The failure in one line: its message and code, without a stack trace. */
function describe(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  const code = (cause as { code?: unknown }).code;
  return typeof code === 'string' && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message;
}
