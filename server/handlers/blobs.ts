// GET / HEAD / DELETE /v2/<name>/blobs/<digest>
import parseRange from 'range-parser';
import { capture, emptyResponse, requestSignal, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { requireDigest, requireName } from '../oci-names.js';

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
      ctx.type = 'application/octet-stream';
      if (ctx.get('If-None-Match') === `"${digest.digest}"`) {
        emptyResponse(ctx, 304);
        return;
      }

      let start = 0;
      let end = size - 1;
      const range = ctx.get('Range');
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
      ctx.body = await blobs.open(digest, { start, end, signal: requestSignal(ctx) });
      ctx.length = length;
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
