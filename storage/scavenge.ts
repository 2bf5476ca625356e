// Frees the memory of upload chunks already passed on, every few MiB of body, instead of at V8's
// pace. Node's HTTP parser hands each socket read of a body over as a fresh buffer outside the
// JavaScript heap, and that memory goes back only when a collection finds its owner dead; V8
// starts one on account of such memory only once it has grown 64 MiB past what the last one left.
// Meanwhile every chunk of an upload took new memory from the kernel: on a fresh server the
// first push of a 32 MiB layer faulted in 6,000-8,700 new pages (a quarter of that push's CPU),
// and the registry's peak resident memory during a 256 MiB push was 27 MiB above what it needs.
// A young-generation collection every 8 MiB received lets the allocator hand the same memory out
// again (first 32 MiB push: ~2,900 faults; 256 MiB push: 193-197 MiB peak -> 168-170 MiB; server
// CPU per push the same).
//
// It takes V8's gc extension, which the start script, bin/signet and the image enable
// (`--expose-gc`, README "Memory and garbage collection"); started without it, nothing is done.

const SCAVENGE_EVERY_BYTES = 8 * 1024 * 1024;

let sinceScavenge = 0;

/** Counts body bytes passed on to storage; every SCAVENGE_EVERY_BYTES, a young-generation collection. */
export function noteBodyBytes(length: number): void {
  sinceScavenge += length;
  if (sinceScavenge < SCAVENGE_EVERY_BYTES) return;
  sinceScavenge = 0;
  globalThis.gc?.({ type: 'minor' });
}
