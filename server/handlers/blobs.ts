// GET / HEAD / DELETE /v2/<name>/blobs/<digest>
import {
  answer,
  capture,
  emptyResponse,
  ifNoneMatch,
  closedSignal,
  requestSignal,
  requireAccess,
  setHeaders,
  type Ctx,
  type RegistryDeps,
} from '../context.js';
import { parseByteRange } from '../byte-range.js';
import { OciError } from '../errors.js';
import { createCallerSlots } from '../caller-slots.js';
import { countSentBytes } from '../metrics.js';
import { requireDigest, requireName } from '../oci-names.js';
import type { ParsedDigest } from '../../storage/digest.js';
import type { MirrorTarget } from '../../mirror/pull-through.js';
import { sendObject } from '../send-object.js';

/** The Go registry's S3 driver signs redirect URLs for 20 minutes. */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;

export function createBlobHandlers(
  deps: Pick<RegistryDeps, 'metadata' | 'blobs' | 'pullThrough' | 'config' | 'metrics' | 'availability' | 'authorizer'>,
) {
  const { metadata, blobs } = deps;
  const slots = createCallerSlots({
    max: deps.config.downloads.maxconcurrent,
    gauge: deps.metrics.downloadsInProgress,
    stallMs: deps.config.http.stalltimeout * 1000,
  });

  /**
   * One of the caller's download slots, to release when the body is sent or the connection gone:
   * a client that requests blobs and does not read them holds sockets and send buffers, as many as
   * it may open. Past the bound, 429 before anything is read from storage.
   */
  function acquireSlot(ctx: Ctx): () => void {
    const caller = ctx.state.principal.user ?? `address ${ctx.ip}`;
    const res = ctx.res;
    const release = slots.acquire(caller, {
      // What the socket took (the sender writes again only once it took the last piece).
      moved: () => res.socket?.bytesWritten ?? 0,
      // The socket is full: the client is not reading. Otherwise the server is reading the blob.
      waitsOnClient: () => res.writableLength > 0,
      evict: () => {
        ctx.state.log.info({ caller }, 'stalled download gave its slot to another request of its caller');
        res.destroy();
      },
    });
    if (!release) {
      // The refusal must not look like the blob: no validators, no year-long caching.
      for (const header of ['ETag', 'Cache-Control', 'Content-Range', 'Docker-Content-Digest']) ctx.remove(header);
      ctx.set('Connection', 'close');
      throw new OciError('TOOMANYREQUESTS', `at most ${deps.config.downloads.maxconcurrent} blob downloads may run at once per user`);
    }
    return release;
  }

  /** The bytes a GET asks for (server/byte-range.ts), with the status and Content-Range set. */
  function selectRange(ctx: Ctx, range: string, size: number): { start: number; end: number } {
    const selected = range && size > 0 ? parseByteRange(range, size) : undefined;
    if (selected?.kind === 'unsatisfiable') {
      ctx.set('Content-Range', `bytes */${size}`);
      throw new OciError('RANGE_INVALID', 'requested range not satisfiable', { range, size });
    }
    if (selected?.kind === 'range') {
      ctx.status = 206;
      ctx.set('Content-Range', `bytes ${selected.start}-${selected.end}/${size}`);
      return { start: selected.start, end: selected.end };
    }
    ctx.status = 200;
    return { start: 0, end: size - 1 };
  }

  /** Sends bytes start..end of the blob as the body; `release` once it is sent or abandoned. */
  async function send(ctx: Ctx, digest: ParsedDigest, start: number, end: number, release: () => void): Promise<void> {
    // Opened before anything is sent, so a missing file is still an OCI error.
    const reader = await blobs.openReader(digest);
    if (reader) {
      ctx.length = end - start + 1;
      // The headers are set; the body goes out here, not through Koa.
      ctx.respond = false;
      try {
        await sendObject(ctx.res, reader, start, end, (bytes) => deps.metrics.blobBytesSent.inc(bytes));
      } catch (err) {
        ctx.state.log.error({ err, digest: digest.digest }, 'reading the blob failed while sending it');
      } finally {
        release();
      }
      return;
    }
    const body = await blobs.open(digest, { start, end, signal: requestSignal(ctx) });
    // A stream closes once read to its end, or destroyed when the client left (no listener on the
    // response: Koa's own pipeline already puts ten there).
    body.once('close', release);
    ctx.body = body;
    ctx.length = end - start + 1;
    countSentBytes(ctx.res, deps.metrics.blobBytesSent);
  }

  /** Headers of every answer about a blob: it never changes, so caches may keep it for a year (as the Go registry). */
  function blobHeaders(digest: ParsedDigest): string[] {
    return [
      'Docker-Content-Digest',
      digest.digest,
      'ETag',
      `"${digest.digest}"`,
      'Cache-Control',
      'max-age=31536000',
      'Accept-Ranges',
      'bytes',
      'Content-Type',
      'application/octet-stream',
    ];
  }

  function setBlobHeaders(ctx: Ctx, digest: ParsedDigest): void {
    setHeaders(ctx, blobHeaders(digest));
  }

  /**
   * As the Go registry's S3 driver: a whole-blob GET goes straight to object storage through a
   * presigned URL (clients follow 307s); ranged reads and HEADs are answered here.
   */
  function redirects(ctx: Ctx, range: string, size: number): boolean {
    return ctx.method === 'GET' && !range && size > 0 && !deps.config.storage.redirect.disable && blobs.presigns;
  }

  async function redirect(ctx: Ctx, digest: ParsedDigest): Promise<void> {
    // Signing a URL asks nothing of S3: during an outage, ask it before sending the client there,
    // which answers 503 now (instead of a client failing to connect to S3) or finds the outage over.
    if (deps.availability.outage('storage')) await blobs.stat(digest);
    ctx.set('Location', await blobs.presignedUrl(digest, REDIRECT_EXPIRY_SECONDS));
    emptyResponse(ctx, 307);
  }

  /** Answers with bytes start..end (none for an empty blob or a HEAD), holding a download slot while sending. */
  async function answerWithBytes(ctx: Ctx, digest: ParsedDigest, start: number, end: number, size: number): Promise<void> {
    const length = size === 0 ? 0 : end - start + 1;
    if (ctx.method === 'HEAD') {
      ctx.set('Content-Length', String(length));
      return;
    }
    if (length === 0) {
      ctx.body = Buffer.alloc(0);
      return;
    }
    const release = acquireSlot(ctx);
    try {
      await send(ctx, digest, start, end, release);
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * A blob a mirror project does not hold yet: HEAD asks the upstream its size; a GET starts (or
   * joins) the upstream fetch and is sent the bytes as they arrive when it is early enough, else
   * waits until they are stored and is served from storage. Undefined: answered here.
   */
  async function pullThrough(ctx: Ctx, mirror: MirrorTarget, digest: ParsedDigest): Promise<number | undefined> {
    const unknown = (): OciError => new OciError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.digest });
    if (ctx.method === 'HEAD') {
      const size = await deps.pullThrough.blobSize(mirror, digest);
      if (size === undefined) throw unknown();
      answer(ctx, 200, blobHeaders(digest), size);
      return undefined;
    }
    const flight = deps.pullThrough.blob(mirror, digest);
    // The fetch stops when every pull that wants it has gone (mirror/blob-flight.ts): this one
    // wants it until its response closes, however it ends (refused, sent, or cut).
    flight.want(closedSignal(ctx));
    const ready = await flight.ready;
    if (ready.kind === 'missing') throw unknown();
    // The slot before the bytes: a client refused one must leave no reader behind in the flight,
    // where its unread buffer filled and held the fetch for every other pull.
    const release = ctx.get('Range') ? undefined : acquireSlot(ctx);
    const live = release ? flight.join() : undefined;
    if (!live) {
      release?.();
      if ((await flight.done) === 'missing') throw unknown();
      const size = await metadata.blobs.find(mirror.repository, digest.digest);
      if (size === undefined) throw unknown();
      return size;
    }
    setBlobHeaders(ctx, digest);
    ctx.status = 200;
    live.once('close', release!);
    ctx.body = live;
    if (ready.size !== undefined) ctx.length = ready.size;
    countSentBytes(ctx.res, deps.metrics.blobBytesSent);
    return undefined;
  }

  return {
    async get(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'pull', name);
      const digest = requireDigest(capture(ctx, 1));
      let size = await metadata.blobs.find(name, digest.digest);
      if (size === undefined) {
        const mirror = await deps.pullThrough.target(name);
        if (mirror) size = await pullThrough(ctx, mirror, digest);
        else throw new OciError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.digest });
        if (size === undefined) return;
      }

      const range = ctx.get('Range');
      const condition = ctx.get('If-None-Match');
      // The most frequent question of all (does the registry hold this layer?) is answered in one
      // write below; every other answer carries the blob's headers from here on, errors included.
      const plainHead = ctx.method === 'HEAD' && !range && !condition;
      if (plainHead) {
        answer(ctx, 200, blobHeaders(digest), size);
        return;
      }
      setBlobHeaders(ctx, digest);
      if (condition && ifNoneMatch(condition, `"${digest.digest}"`)) {
        emptyResponse(ctx, 304);
        return;
      }
      if (redirects(ctx, range, size)) {
        await redirect(ctx, digest);
        return;
      }
      const { start, end } = selectRange(ctx, range, size);
      await answerWithBytes(ctx, digest, start, end, size);
    },

    async delete(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'delete', name);
      const digest = requireDigest(capture(ctx, 1));
      if (!deps.config.storage.delete.enabled) throw new OciError('UNSUPPORTED', 'deletion is disabled on this registry');
      // Only the repository's link goes; the bytes are garbage collection's business.
      if (!(await metadata.blobs.remove(name, digest.digest))) {
        throw new OciError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.digest });
      }
      emptyResponse(ctx, 202);
    },
  };
}
