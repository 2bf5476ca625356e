// Blob uploads: POST (session, monolithic ?digest=, cross-repository ?mount=&from=), PATCH chunks,
// PUT to close, GET status, DELETE to cancel. Sessions live in the metadata store, chunks in the
// blob store, so an upload survives a restart and may continue on another replica.
import { randomUUID } from 'node:crypto';
import type { ParsedDigest } from '../../storage/digest.js';
import { StorageFullError, StorageNotFoundError } from '../../storage/errors.js';
import type { UploadChunk, WriteChunkOptions } from '../../storage/blobs.js';
import type { UploadRecord } from '../../storage/metadata-store.js';
import { isUploadId } from '../../storage/paths.js';
import { allowed, capture, emptyResponse, queryParam, requestSignal, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { OciError, toOciError } from '../errors.js';
import { requireDigest, requireName } from '../oci-names.js';
import { isValidName } from '../../storage/oci-grammar.js';
import { createCallerSlots } from '../caller-slots.js';
import type { QuotaRelease } from '../quota.js';

// `Content-Range: <start>-<end>` (the spec's form); some clients prefix "bytes=" or "bytes ".
const CONTENT_RANGE_RE = /^(?:bytes[= ])?(\d{1,15})-(\d{1,15})$/;

export function createUploadHandlers(
  deps: Pick<RegistryDeps, 'metadata' | 'blobs' | 'config' | 'metrics' | 'authorizer' | 'checkQuota' | 'quotaRoom'>,
) {
  const { metadata, blobs, checkQuota } = deps;
  const slots = createCallerSlots({
    max: deps.config.uploads.maxconcurrent,
    gauge: deps.metrics.uploadsInProgress,
    stallMs: deps.config.http.stalltimeout * 1000,
  });

  function setProgress(ctx: Ctx, name: string, id: string, size: number): void {
    ctx.set('Location', `/v2/${name}/blobs/uploads/${id}`);
    // Inclusive end of what was received; "0-0" for an empty upload, as distribution answers.
    ctx.set('Range', `0-${Math.max(size - 1, 0)}`);
    ctx.set('Docker-Upload-UUID', id);
  }

  function setCreated(ctx: Ctx, name: string, digest: string): void {
    ctx.set('Location', `/v2/${name}/blobs/${digest}`);
    ctx.set('Docker-Content-Digest', digest);
    emptyResponse(ctx, 201);
  }

  function unknownUpload(untrustedId: string): OciError {
    return new OciError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uploadId: untrustedId });
  }

  async function loadUpload(name: string, untrustedId: string): Promise<UploadRecord> {
    const upload = isUploadId(untrustedId) ? await metadata.uploads.find(untrustedId) : undefined;
    if (!upload || upload.repository !== name) throw unknownUpload(untrustedId);
    return upload;
  }

  /** The upload for its commit (metadata uploads.claim): it stays until its blob is linked. */
  async function claimUpload(name: string, untrustedId: string): Promise<UploadRecord> {
    const upload = isUploadId(untrustedId) ? await metadata.uploads.claim(untrustedId, name) : undefined;
    if (!upload) throw unknownUpload(untrustedId);
    return upload;
  }

  function hasBody(ctx: Ctx): boolean {
    const length = ctx.get('Content-Length');
    if (length !== '') return length !== '0';
    return ctx.get('Transfer-Encoding') !== '';
  }

  /**
   * One of the caller's concurrent upload slots for a request with a body (`undefined` without
   * one), taken before anything else so that a refusal (429) changes nothing.
   */
  function acquireSlot(ctx: Ctx): (() => void) | undefined {
    if (!hasBody(ctx)) return undefined;
    const caller = ctx.state.principal.user ?? `address ${ctx.ip}`;
    const req = ctx.req;
    const release = slots.acquire(caller, {
      moved: () => req.socket.bytesRead,
      // Waiting for the client's bytes: the body is not all in, and the server is not holding it
      // back (a paused stream is the disk's doing; one not flowing yet is still being set up).
      waitsOnClient: () => !req.complete && req.readableFlowing === true && req.readableLength === 0,
      evict: () => {
        ctx.state.log.info({ caller }, 'stalled upload gave its slot to another request of its caller');
        req.socket.destroy();
      },
    });
    if (!release) {
      // Refused before the body is read: close the connection rather than drain a large body.
      ctx.set('Connection', 'close');
      throw new OciError('TOOMANYREQUESTS', `at most ${deps.config.uploads.maxconcurrent} uploads may stream at once per user`);
    }
    return release;
  }

  /**
   * Streams the request body into a new chunk object at the upload's end (none for an empty body).
   * In a project with a quota the upload grows no further than could be linked (server/quota.ts
   * QuotaRoomCheck; `digest`: the blob's, when the request names it): a longer `Content-Length` is
   * refused before a byte is read, a longer body is cut where it passes.
   */
  async function writeBody(ctx: Ctx, upload: UploadRecord, digest?: string): Promise<UploadChunk | undefined> {
    const room = await deps.quotaRoom(upload.repository, digest);
    let limit: WriteChunkOptions['limit'];
    if (room) {
      const refuse = (size: number, atLeast: boolean): OciError => {
        // Refused with the body unread: closing the connection is cheaper than draining it.
        ctx.set('Connection', 'close');
        return room.error(size, atLeast);
      };
      const length = ctx.get('Content-Length');
      if (/^\d{1,15}$/.test(length) && upload.size + Number(length) > room.bytes) throw refuse(upload.size + Number(length), false);
      const left = Math.max(room.bytes - upload.size, 0);
      limit = { bytes: left, error: () => refuse(upload.size + left + 1, true) };
    }
    const options: WriteChunkOptions = { signal: requestSignal(ctx), ...(limit ? { limit } : {}) };
    const chunk = await blobs.writeChunk(upload.id, upload.size, ctx.req, options).catch((err: unknown) => {
      // The client is told the size it asked to store, when it said.
      const length = ctx.get('Content-Length');
      throw err instanceof StorageFullError && /^\d{1,15}$/.test(length) ? err.withRequested(Number(length)) : err;
    });
    deps.metrics.blobBytesReceived.inc(chunk.size);
    return chunk.size === 0 ? undefined : chunk;
  }

  /** Streams the request body in as the next recorded chunk; returns the upload's new size. */
  async function receive(ctx: Ctx, upload: UploadRecord): Promise<number> {
    const release = acquireSlot(ctx);
    if (!release) return upload.size;
    // The session may be gone while the body streamed in (cancelled, finished or purged, its
    // objects removed under the write): 404 BLOB_UPLOAD_UNKNOWN, as the spec answers for a session
    // that is not there and on which docker and containers/image start the blob over, rather than
    // the storage's complaint about a missing object (500) or a lost append (416, which sends them
    // to ask the session for its offset, and get 404 then).
    const gone = async (err: unknown): Promise<unknown> => ((await metadata.uploads.find(upload.id)) ? err : unknownUpload(upload.id));
    const chunk = await writeBody(ctx, upload)
      .catch(async (err: unknown) => {
        throw await gone(err);
      })
      .finally(release);
    if (!chunk) return upload.size;
    if (!(await metadata.uploads.addChunk(upload.id, chunk))) {
      await blobs.discardChunk(upload.id, chunk);
      throw await gone(new OciError('RANGE_INVALID', 'another request wrote to this upload at the same offset'));
    }
    blobs.chunkRecorded(upload.id, chunk);
    return upload.size + chunk.size;
  }

  /**
   * Takes the request's final body (if any), verifies and publishes the blob and links it. The
   * final body joins the recorded chunks without being recorded itself: a PUT costs one statement
   * before the link. The session (`session`: the upload's id, none for a monolithic POST) ends in
   * the statement that links the blob, not before: a PUT cut off by a crash, however late, leaves
   * the upload where its recorded chunks left it, and the client's retried PUT completes it
   * (hundreds of MB need not be pushed again). The one gap left: a crash between placing the bytes
   * and linking them (milliseconds) leaves a session whose chunk moved; its retry fails and the
   * client starts the blob over.
   *
   * A failure that is the client's (a wrong digest or size, a quota refusal, a chunk gone) ends the
   * session and removes its objects, as distribution does; containers/image and docker start a
   * failed blob over with a new session. Any other failure drops only the final body, so the PUT
   * can be sent again.
   */
  async function complete(
    ctx: Ctx,
    name: string,
    upload: UploadRecord,
    digest: ParsedDigest,
    release: (() => void) | undefined,
    session?: string,
  ): Promise<void> {
    let last: UploadChunk | undefined;
    let quotaHeld: QuotaRelease | undefined;
    try {
      if (release) last = await writeBody(ctx, upload, digest.digest).finally(release);
      const chunks = last ? [...upload.chunks, last] : upload.chunks;
      const size = upload.size + (last?.size ?? 0);
      quotaHeld = await checkQuota(name, digest.digest, size);
      await blobs.commit(upload.id, chunks, digest, {
        // Placing the bytes and linking them is one critical section (see metadata blobs.save).
        link: (place) => metadata.blobs.save(name, digest.digest, size, { place, ...(session ? { endUpload: session } : {}) }),
      });
    } catch (err) {
      const clientFault = (toOciError(err)?.status ?? 500) < 500;
      if (!session || clientFault) {
        if (session) await metadata.uploads.remove(session).catch(() => undefined);
        await blobs.removeUpload(upload.id).catch(() => undefined);
      } else if (last) {
        await blobs.discardChunk(upload.id, last).catch(() => undefined);
      }
      throw err;
    } finally {
      await quotaHeld?.();
    }
  }

  async function cancel(id: string): Promise<void> {
    await metadata.uploads.remove(id);
    await blobs.removeUpload(id);
  }

  /** Links a blob from another repository the caller may pull from; false to fall back to a session. */
  async function tryMount(ctx: Ctx, name: string, mount: string, from: string | undefined): Promise<boolean> {
    const digest = requireDigest(mount);
    if (!from || !isValidName(from)) return false;
    // Mounting reads the source: the caller needs pull there, else it gets a plain session.
    if (!(await allowed(ctx, deps, 'pull', from))) return false;
    const size = await metadata.blobs.find(from, digest.digest);
    if (size === undefined) return false;
    const quotaHeld = await checkQuota(name, digest.digest, size);
    try {
      await metadata.blobs.save(name, digest.digest, size, {
        place: async () => {
          if (!(await blobs.stat(digest))) throw new StorageNotFoundError(digest.digest);
        },
      });
    } catch (err) {
      if (err instanceof StorageNotFoundError) return false; // collected meanwhile: upload instead
      throw err;
    } finally {
      await quotaHeld();
    }
    setCreated(ctx, name, digest.digest);
    return true;
  }

  return {
    async start(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'push', name);
      const mount = queryParam(ctx, 'mount');
      if (mount && (await tryMount(ctx, name, mount, queryParam(ctx, 'from')))) return;

      const untrustedDigest = queryParam(ctx, 'digest');
      const digest = untrustedDigest === undefined ? undefined : requireDigest(untrustedDigest);
      const id = randomUUID();
      if (digest) {
        // Monolithic upload: the whole blob in the POST body. No session row: nothing else can
        // reach the upload, and should the server die midway, GC removes its objects once old.
        const release = acquireSlot(ctx);
        const upload: UploadRecord = { id, repository: name, size: 0, chunks: [], createdAt: new Date() };
        await complete(ctx, name, upload, digest, release);
        setCreated(ctx, name, digest.digest);
        return;
      }
      await metadata.uploads.create(id, name);
      setProgress(ctx, name, id, 0);
      emptyResponse(ctx, 202);
    },

    async patch(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'push', name);
      // Marked as used as it starts: garbage collection on another replica, which cannot see this
      // one's writes, removes only sessions untouched for the purge age (it took one whose chunk
      // was streaming in here; adversarial testing).
      const upload = await claimUpload(name, capture(ctx, 1));
      const contentRange = ctx.get('Content-Range');
      if (contentRange) {
        const match = CONTENT_RANGE_RE.exec(contentRange);
        const start = Number(match?.[1]);
        const end = Number(match?.[2]);
        const length = ctx.get('Content-Length');
        if (!match || start !== upload.size || end < start || (length !== '' && Number(length) !== end - start + 1)) {
          setProgress(ctx, name, upload.id, upload.size);
          throw new OciError('RANGE_INVALID', `chunk must start at ${upload.size} and match Content-Length`, {
            contentRange,
            uploaded: upload.size,
          });
        }
      }
      const size = await receive(ctx, upload);
      setProgress(ctx, name, upload.id, size);
      emptyResponse(ctx, 202);
    },

    async finish(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'push', name);
      const digest = requireDigest(queryParam(ctx, 'digest'));
      const release = acquireSlot(ctx);
      let upload: UploadRecord;
      try {
        upload = await claimUpload(name, capture(ctx, 1));
      } catch (err) {
        release?.();
        throw err;
      }
      await complete(ctx, name, upload, digest, release, upload.id);
      setCreated(ctx, name, digest.digest);
    },

    async status(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'push', name);
      const upload = await loadUpload(name, capture(ctx, 1));
      setProgress(ctx, name, upload.id, upload.size);
      emptyResponse(ctx, 204);
    },

    async cancel(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'push', name);
      const upload = await loadUpload(name, capture(ctx, 1));
      await cancel(upload.id);
      emptyResponse(ctx, 204);
    },
  };
}
