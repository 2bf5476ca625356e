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
// Every 2 MiB rather than 8: what the buffers leave behind stays. glibc hands back only the top of
// its main heap, and the chunks freed between longer-lived allocations stay resident: on external
// PostgreSQL two 1 GiB push/pull rounds left that heap at 11-24 MiB (6 before) at 8 MiB, 7-11 at 2,
// and the registry's peak through bench rows 51-52 went from 102-107 MB to 98-99 MB. Pushes of
// 1 GiB, three alternating rounds of two: 1.01-1.19 ms of server CPU per MiB at 2 MiB, 1.04-1.16
// at 8, 1.02-1.13 at 4, 1.06-1.31 at 1 (more CPU, no less memory); the same MiB/s.
//
// It takes V8's gc extension, which the start script, bin/signet and the image enable
// (`--expose-gc`, README "Memory and garbage collection"); started without it, nothing is done.

const SCAVENGE_EVERY_BYTES = 2 * 1024 * 1024;

let sinceScavenge = 0;

/** Counts body bytes passed on to storage; every SCAVENGE_EVERY_BYTES, a young-generation collection. */
export function noteBodyBytes(length: number): void {
  sinceScavenge += length;
  if (sinceScavenge < SCAVENGE_EVERY_BYTES) return;
  sinceScavenge = 0;
  globalThis.gc?.({ type: 'minor' });
}
