// s3rver 3.7 departs from S3 in ways that S3, MinIO and every real S3 implementation do not, and
// that the blob store relies on. The test server is corrected here, so a failing test means our
// store is wrong, not the emulator:
//
//  1. A PUT (and CompleteMultipartUpload, which goes through it) writes straight into the object's
//     file, and answers before the bytes are written: concurrent writers interleave, a reader can
//     see half an object. Here it writes a temporary file and renames it into place, then answers.
//  2. `Range: bytes=0-0` returns the whole object (it reads `end || Infinity`).
//  3. DELETE of an object removes its directories when they look empty; a concurrent PUT into the
//     same directory, or a concurrent DELETE (readdir of a removed directory) then fails with 500.
//     Here empty directories are left alone (they hold no objects and vanish with the server).
//  4. AbortMultipartUpload (`DELETE ?uploadId=`) is refused as not allowed, so an abandoned upload's
//     parts stay. Here it removes them, and `incompleteUploads()` shows what is left.
//  5. UploadPartCopy (`PUT ?partNumber=&uploadId=` with `x-amz-copy-source`) is not implemented.
//
// Requests handled here (4, 5) skip s3rver's signature check; the others go through it.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

interface StoredObject {
  bucket: string;
  key: string;
  content: Readable | Buffer | null;
  metadata: Record<string, unknown>;
  range?: { start: number; end: number };
}

/** The parts of s3rver's FilesystemStore that are used or replaced here. */
interface FilesystemStore {
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  putMetadata(bucket: string, key: string, metadata: Record<string, unknown>, md5?: string): Promise<void>;
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<StoredObject | null>;
  putObject(object: StoredObject): Promise<{ size: number; md5: string }>;
  putPart(bucket: string, uploadId: string, partNumber: number, content: Readable): Promise<{ size: number; md5: string }>;
  deleteObject(bucket: string, key: string): Promise<void>;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  get(header: string): string;
  status: number;
  body: unknown;
  type: string;
}

type Middleware = (ctx: KoaContext, next: () => Promise<void>) => Promise<void>;

export interface S3rverInstance {
  store: unknown;
  middleware: unknown[];
}

export interface S3rverFixes {
  /** Bytes stored so far as parts of multipart uploads (UploadPart), on this server. */
  partBytesReceived(): number;
  /** Object names of multipart uploads begun and neither completed nor aborted in `bucket`. */
  incompleteUploads(bucket: string, prefix?: string): Promise<string[]>;
}

export function patchS3rver(server: S3rverInstance): S3rverFixes {
  const store = server.store as FilesystemStore;
  const objectPath = (bucket: string, key: string): string => store.getResourcePath(bucket, key, 'object');
  const uploadsDir = (bucket: string): string => store.getResourcePath(bucket, undefined, 'uploads');

  // 1. Atomic PUT.
  store.putObject = async (object) => {
    const target = objectPath(object.bucket, object.key);
    await mkdir(path.dirname(target), { recursive: true });
    // Not a name s3rver lists: only files ending in `._S3rver_object` are objects.
    const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
    const md5 = createHash('md5');
    let size = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : (object.content ?? Readable.from([]));
    try {
      await pipeline(content, counter, createWriteStream(tmp));
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const digest = md5.digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };

  // 2. A range ending at byte 0.
  const getObject = store.getObject.bind(store);
  store.getObject = async (bucket, key, options) => {
    const object = await getObject(bucket, key, options);
    if (options?.end === 0 && object?.content instanceof Readable) {
      object.content.destroy();
      object.content = createReadStream(objectPath(bucket, key), { start: 0, end: 0 });
      object.range = { start: 0, end: 0 };
    }
    return object;
  };

  // 3. DELETE without pruning directories.
  store.deleteObject = async (bucket, key) => {
    const file = objectPath(bucket, key);
    await Promise.all([file, `${file}.md5`, store.getResourcePath(bucket, key, 'metadata.json')].map((f) => rm(f, { force: true })));
  };

  let partBytes = 0;
  const putPart = store.putPart.bind(store);
  store.putPart = async (bucket, uploadId, partNumber, content) => {
    const result = await putPart(bucket, uploadId, partNumber, content);
    partBytes += result.size;
    return result;
  };

  // 4 and 5, ahead of s3rver's router.
  const multipart: Middleware = async (ctx, next) => {
    const uploadId = single(ctx.query.uploadId);
    const [bucket, ...keyParts] = ctx.path.slice(1).split('/');
    if (uploadId === undefined || !bucket || keyParts.length === 0 || !/^[0-9a-f]+$/.test(uploadId)) return next();
    const uploadDir = path.join(uploadsDir(bucket), uploadId);
    if (ctx.method === 'DELETE') {
      await rm(uploadDir, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    const copySource = ctx.get('x-amz-copy-source');
    const partNumber = Number(single(ctx.query.partNumber));
    if (ctx.method !== 'PUT' || !copySource || !Number.isInteger(partNumber)) return next();
    const [srcBucket, ...srcKeyParts] = decodeURIComponent(copySource).replace(/^\//, '').split('/');
    const range = /^bytes=(\d+)-(\d+)$/.exec(ctx.get('x-amz-copy-source-range'));
    const sourceFile = objectPath(srcBucket!, srcKeyParts.join('/'));
    // s3rver's putPart does not listen for errors on its source: make sure it opens.
    if (
      !(await access(sourceFile).then(
        () => true,
        () => false,
      ))
    ) {
      ctx.status = 404;
      ctx.type = 'application/xml';
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>';
      return;
    }
    const source = createReadStream(sourceFile, range ? { start: Number(range[1]), end: Number(range[2]) } : {});
    const { md5 } = await store.putPart(bucket, uploadId, partNumber, source);
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>"${md5}"</ETag></CopyPartResult>`;
  };
  server.middleware.unshift(multipart);

  return {
    partBytesReceived: () => partBytes,
    async incompleteUploads(bucket, prefix = '') {
      let ids: string[];
      try {
        ids = await readdir(uploadsDir(bucket));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
      const keys = await Promise.all(ids.map((id) => readFile(path.join(uploadsDir(bucket), id, 'key'), 'utf8').catch(() => undefined)));
      // An upload removed while we looked has no key file any more: it is not left over.
      return keys.filter((key): key is string => key !== undefined && key.startsWith(prefix)).sort();
    },
  };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
