// A bound on requests streaming blob data at once, per caller: one user (or, for anonymous
// callers, one client address) cannot tie up every socket, disk stream and send buffer of the
// process. Uploads (REGISTRY_UPLOADS_MAXCONCURRENT) and blob downloads
// (REGISTRY_DOWNLOADS_MAXCONCURRENT) each have their own; a request over its bound is refused with
// 429 TOOMANYREQUESTS before its body is read or sent.
import type { Gauge } from 'prom-client';

export interface CallerSlots {
  /** A release function, or undefined when `caller` already holds `max` slots. */
  acquire(caller: string): (() => void) | undefined;
}

/** `max` 0 means no bound; `gauge` follows the number of slots held. */
export function createCallerSlots(max: number, gauge?: Gauge): CallerSlots {
  const held = new Map<string, number>();
  return {
    acquire(caller) {
      const count = held.get(caller) ?? 0;
      if (max > 0 && count >= max) return undefined;
      held.set(caller, count + 1);
      gauge?.inc();
      let released = false;
      return () => {
        if (released) return;
        released = true;
        gauge?.dec();
        const left = (held.get(caller) ?? 1) - 1;
        if (left > 0) held.set(caller, left);
        else held.delete(caller);
      };
    },
  };
}
