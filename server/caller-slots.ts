// A bound on requests streaming blob data at once, per caller: one user (or, for anonymous
// callers, one client address) cannot tie up every socket, disk stream and send buffer of the
// process. Uploads (REGISTRY_UPLOADS_MAXCONCURRENT) and blob downloads
// (REGISTRY_DOWNLOADS_MAXCONCURRENT) each have their own; a request over its bound is refused with
// 429 TOOMANYREQUESTS before its body is read or sent.
//
// A request whose bytes have stopped moving (a client that stalled, or vanished without closing
// its connection) would hold its slot until the idle timeout closes the connection (60 s by
// default): 32 stalled PATCHes held all of a caller's upload slots that long. When a caller at
// its bound asks for another slot, the one of its requests that has been stalled longest, for at
// least REGISTRY_HTTP_STALLTIMEOUT, is ended and gives its slot up.
import type { Gauge } from 'prom-client';

/** The request holding a slot, as far as telling whether it stalled goes. */
export interface SlotHolder {
  /** Bytes moved so far (received for an upload, sent for a download). */
  moved(): number;
  /** Whether the request waits on its client right now; false while the server is the slow side. */
  waitsOnClient(): boolean;
  /** Ends the stalled request; its slot goes to another. */
  evict(): void;
}

export interface CallerSlots {
  /** A release function, or undefined when `caller` already holds `max` slots none of which stalled. */
  acquire(caller: string, holder?: SlotHolder): (() => void) | undefined;
}

export interface CallerSlotsOptions {
  /** Slots per caller; 0 means no bound. */
  max: number;
  /** Follows the number of slots held. */
  gauge?: Gauge;
  /** How long a request may move no byte before its slot may be given to another; 0: never. */
  stallMs?: number;
}

interface Slot {
  holder?: SlotHolder;
  /** `moved()` when last looked at, and when it last changed (or the server was the slow side). */
  bytes: number;
  movedAt: number;
  release(): void;
}

/** How often held slots are looked at: the stall timeout is met within this much. */
const SAMPLE_MS = 1000;

export function createCallerSlots(options: CallerSlotsOptions): CallerSlots {
  const { max, gauge, stallMs = 0 } = options;
  const held = new Map<string, Set<Slot>>();
  let sampler: NodeJS.Timeout | undefined;

  function sample(slot: Slot, now: number): void {
    if (!slot.holder) return;
    const bytes = slot.holder.moved();
    if (bytes !== slot.bytes || !slot.holder.waitsOnClient()) slot.movedAt = now;
    slot.bytes = bytes;
  }

  function sampleAll(): void {
    const now = Date.now();
    for (const slots of held.values()) for (const slot of slots) sample(slot, now);
  }

  /** The caller's request that moved nothing for longest, if that is at least the stall timeout. */
  function stalled(slots: Set<Slot>): Slot | undefined {
    const now = Date.now();
    let oldest: Slot | undefined;
    for (const slot of slots) {
      sample(slot, now);
      if (slot.holder && now - slot.movedAt >= stallMs && (!oldest || slot.movedAt < oldest.movedAt)) oldest = slot;
    }
    return oldest;
  }

  return {
    acquire(caller, holder) {
      const full = held.get(caller);
      if (max > 0 && full && full.size >= max) {
        const victim = stallMs > 0 ? stalled(full) : undefined;
        if (!victim) return undefined;
        victim.release();
        victim.holder!.evict();
      }
      const slots = held.get(caller) ?? new Set<Slot>();
      held.set(caller, slots);
      const slot: Slot = { ...(holder ? { holder } : {}), bytes: holder?.moved() ?? 0, movedAt: Date.now(), release: () => undefined };
      let released = false;
      slot.release = () => {
        if (released) return;
        released = true;
        gauge?.dec();
        slots.delete(slot);
        if (slots.size === 0 && held.get(caller) === slots) held.delete(caller);
        if (held.size === 0 && sampler) {
          clearInterval(sampler);
          sampler = undefined;
        }
      };
      slots.add(slot);
      gauge?.inc();
      if (holder && stallMs > 0 && !sampler) {
        sampler = setInterval(sampleAll, Math.min(SAMPLE_MS, stallMs));
        sampler.unref();
      }
      return slot.release;
    },
  };
}
