// GET / HEAD / DELETE /v2/<name>/blobs/<digest>
import parseRange from 'range-parser';
import { capture, emptyResponse, requestSignal, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { blobKey } from '../../storage/paths.js';
import { hasPositionalReads, hasPresignedGet } from '../../storage/blob-store.js';
import { OciError } from '../errors.js';
import { countSentBytes } from '../metrics.js';
import { requireDigest, requireName } from '../oci-names.js';
import { sendObject } from '../send-object.js';

/** The Go registry's S3 driver signs redirect URLs for 20 minutes. */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;

export function createBlobHandlers(deps: RegistryDeps) {
  const { metadata, blobs } = deps;

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
        // Signing a URL asks nothing of S3: during an outage, ask it before sending the client
        // there, which answers 503 now (instead of a client failing to connect to S3) or finds
        // the outage over.
        if (deps.availability.outage('storage')) await blobs.stat(digest);
        ctx.set('Location', await deps.store.presignedGetUrl(blobKey(digest), REDIRECT_EXPIRY_SECONDS));
        emptyResponse(ctx, 307);
        return;
      }

      let start = 0;
      let end = size - 1;
      if (range && size > 0) {
        const ranges = parseRange(size, range, { combine: true });
        if (ranges === -1) {
          ctx.set('Content-Range', `bytes */${size}`);
          throw new OciError('RANGE_INVALID', 'requested range not satisfiable', { range, size });
        }
        // Malformed (-2) or several ranges: answer with the whole blob, as RFC 9110 allows.
        if (Array.isArray(ranges) && ranges.length === 1 && ranges.type === 'bytes') {
          start = ranges[0]!.start;
          end = ranges[0]!.end;
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
