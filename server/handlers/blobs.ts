// GET / HEAD / DELETE /v2/<name>/blobs/<digest>
import { capture, emptyResponse, requestSignal, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { blobKey } from '../../storage/paths.js';
import { hasPositionalReads, hasPresignedGet } from '../../storage/blob-store.js';
import { parseByteRange } from '../byte-range.js';
import { OciError } from '../errors.js';
import { createCallerSlots } from '../caller-slots.js';
import { countSentBytes } from '../metrics.js';
import { requireDigest, requireName } from '../oci-names.js';
import { sendObject } from '../send-object.js';

/** The Go registry's S3 driver signs redirect URLs for 20 minutes. */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;

export function createBlobHandlers(deps: RegistryDeps) {
  const { metadata, blobs } = deps;
  const slots = createCallerSlots({
    max: deps.config.downloads.maxconcurrent,
    gauge: deps.metrics.downloadsInProgress,
    stallMs: deps.config.http.stalltimeout * 1000,
  });

  /**
   * One of the caller's download slots, held until the response is over (sent, or the connection
   * gone): a client that requests blobs and does not read them holds sockets and send buffers, as
   * many as it may open. Past the bound, 429 before anything is read from storage.
   */
  function acquireSlot(ctx: Ctx): void {
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
    if (ctx.res.closed) release();
    else ctx.res.once('close', release);
  }

  return {
    async get(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'pull', name);
      const digest = requireDigest(capture(ctx, 1));
      const size = await metadata.blobs.find(name, digest.digest);
      if (size === undefined) throw new OciError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: digest.digest });

      // Blobs never change, so clients and proxies may cache them for a year (as the Go registry).
      ctx.set('Docker-Content-Digest', digest.digest);
      ctx.set('ETag', `"${digest.digest}"`);
      ctx.set('Cache-Control', 'max-age=31536000');
      ctx.set('Accept-Ranges', 'bytes');
      ctx.set('Content-Type', 'application/octet-stream');
      if (ctx.get('If-None-Match') === `"${digest.digest}"`) {
        emptyResponse(ctx, 304);
        return;
      }

      const range = ctx.get('Range');
      // As the Go registry's S3 driver: a whole-blob GET goes straight to object storage through a
      // presigned URL (clients follow 307s); ranged reads and HEADs are answered here.
      if (ctx.method === 'GET' && !range && size > 0 && !deps.config.storage.redirect.disable && hasPresignedGet(deps.store)) {
        ctx.set('Location', await deps.store.presignedGetUrl(blobKey(digest), REDIRECT_EXPIRY_SECONDS));
        emptyResponse(ctx, 307);
        return;
      }

      let start = 0;
      let end = size - 1;
      if (range && size > 0) {
        const selected = parseByteRange(range, size);
        if (selected.kind === 'unsatisfiable') {
          ctx.set('Content-Range', `bytes */${size}`);
          throw new OciError('RANGE_INVALID', 'requested range not satisfiable', { range, size });
        }
        if (selected.kind === 'range') {
          ({ start, end } = selected);
          ctx.status = 206;
          ctx.set('Content-Range', `bytes ${start}-${end}/${size}`);
        }
      }
      if (ctx.status !== 206) ctx.status = 200;
      const length = size === 0 ? 0 : end - start + 1;
      if (ctx.method === 'HEAD') {
        ctx.set('Content-Length', String(length));
        return;
      }
      if (length === 0) {
        ctx.body = Buffer.alloc(0);
        return;
      }
      acquireSlot(ctx);
      if (hasPositionalReads(deps.store)) {
        // Opened before anything is sent, so a missing file is still an OCI error.
        const reader = await deps.store.openReader(blobKey(digest));
        ctx.length = length;
        // The headers are set; the body goes out here, not through Koa.
        ctx.respond = false;
        try {
          await sendObject(ctx.res, reader, start, end, (bytes) => deps.metrics.blobBytesSent.inc(bytes));
        } catch (err) {
          ctx.state.log.error({ err, digest: digest.digest }, 'reading the blob failed while sending it');
        }
        return;
      }
      ctx.body = await blobs.open(digest, { start, end, signal: requestSignal(ctx) });
      ctx.length = length;
      countSentBytes(ctx.res, deps.metrics.blobBytesSent);
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
