// Page-aligned buffers for O_DIRECT writes, kept in a small pool.
//
// Linux refuses an O_DIRECT write (EINVAL) unless the memory address, the length and the file
// offset are multiples of the device's logical block size (512 or 4096 bytes). Node's Buffers come
// from malloc and are only 16-byte aligned, and JavaScript cannot see an address. The memory of a
// WebAssembly.Memory is mapped by V8 on its own, at least page-aligned (4 KiB), so its bytes serve.
// Nothing depends on that for correctness: the file sink falls back to a buffered write when the
// kernel refuses a direct one.
//
// Reused rather than made per upload: a fresh buffer's pages are faulted in on first use, and a
// Memory holds an address-space reservation until garbage collection frees it.

/** WebAssembly's page size: buffers are whole pages. */
const WASM_PAGE = 64 * 1024;
/** Idle buffers kept for reuse; more are dropped for the garbage collector. */
const POOL_LIMIT = 8;

const idle = new Map<number, Buffer[]>();
const aligned = new WeakSet<Buffer>();

/** A page-aligned buffer of `bytes` (a multiple of 64 KiB), or a plain one if V8 cannot map more. */
export function takeAlignedBuffer(bytes: number): Buffer {
  const pooled = idle.get(bytes)?.pop();
  if (pooled) return pooled;
  if (bytes % WASM_PAGE !== 0) return Buffer.allocUnsafeSlow(bytes);
  try {
    const pages = bytes / WASM_PAGE;
    const buffer = Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
    aligned.add(buffer);
    return buffer;
  } catch {
    // Out of address space for Memories: a plain buffer still works, through buffered writes.
    return Buffer.allocUnsafeSlow(bytes);
  }
}

/** Whether the buffer's memory is page-aligned (a plain one stands in when V8 cannot map more). */
export function isAligned(buffer: Buffer): boolean {
  return aligned.has(buffer);
}

/** Gives a buffer back once nothing reads or writes it any more. */
export function returnAlignedBuffer(buffer: Buffer): void {
  if (!aligned.has(buffer)) return;
  let list = idle.get(buffer.length);
  if (!list) idle.set(buffer.length, (list = []));
  if (list.length < POOL_LIMIT) list.push(buffer);
}
