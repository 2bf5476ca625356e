// Every storage key is built here, only from validated digests and upload ids, so no request can
// name a key outside these trees:
//
//   blobs/<algorithm>/<first two hex>/<hex>      content-addressed blob data, immutable
//   uploads/<upload id>.<offset>-<nonce>         one object per received chunk of an upload
//   uploads/<upload id>.assembled-<nonce>        a multi-chunk upload being joined and hashed
//   blobs/health-probe                           never written: readiness checks stat it
//
// Chunks are objects of their own (not appended to one file) because S3 cannot append; they are
// joined when the upload is committed. An upload's objects share a name prefix in one flat tree
// rather than a directory of their own: on the filesystem, making and removing a directory for
// every upload cost an inode allocation and release per blob pushed, about 15% of the server's
// CPU per small blob (bench/, "2000 small blobs"; ext4's inode allocator skips recently freed
// inodes one by one). Uploads started by an earlier version keep their objects under
// `uploads/<upload id>/`; the listing prefix and uploadIdOfKey cover both.
import { randomBytes } from 'node:crypto';
import type { ParsedDigest } from './digest.js';
import { InvalidStorageKeyError } from './errors.js';

const UPLOAD_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUploadId(untrusted: string): boolean {
  return UPLOAD_ID_RE.test(untrusted);
}

export function blobKey(digest: ParsedDigest): string {
  return `blobs/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;
}

/** The key under which blobs live. */
export const BLOBS_TREE = 'blobs/';

const BLOB_KEY_RE = /^blobs\/(sha256|sha512)\/([0-9a-f]{2})\/([0-9a-f]+)$/;

/** The digest a blob key stands for (the inverse of blobKey), or undefined for any other key. */
export function digestOfBlobKey(key: string): string | undefined {
  const match = BLOB_KEY_RE.exec(key);
  if (!match || !match[3]!.startsWith(match[2]!)) return undefined;
  return `${match[1]}:${match[3]}`;
}

/**
 * A key no object ever has (not a digest path): asking for it checks that the storage answers,
 * bucket and permissions included, without reading anything.
 */
export const HEALTH_PROBE_KEY = 'blobs/health-probe';

/** The top-level tree holding every upload's objects, one name prefix per upload. */
export const UPLOADS_TREE = 'uploads';

/** What the keys of an upload's new objects start with. */
export function uploadPrefix(uploadId: string): string {
  return `${uploadListPrefix(uploadId)}.`;
}

/** Lists every object of an upload, also one started by an earlier version (`uploads/<id>/…`). */
export function uploadListPrefix(uploadId: string): string {
  if (!isUploadId(uploadId)) throw new InvalidStorageKeyError(`${UPLOADS_TREE}/${uploadId}`);
  return `${UPLOADS_TREE}/${uploadId}`;
}

const UPLOAD_ID_LENGTH = 36;

/** The upload a key under the uploads tree belongs to, in either layout; undefined for any other key. */
export function uploadIdOfKey(key: string): string | undefined {
  const [tree, name, below] = key.split('/');
  if (tree !== UPLOADS_TREE || name === undefined) return undefined;
  // An earlier version's `uploads/<id>/<object>`.
  if (below !== undefined) return isUploadId(name) ? name : undefined;
  // `uploads/<id>.<object>`.
  const id = name.slice(0, UPLOAD_ID_LENGTH);
  return name[UPLOAD_ID_LENGTH] === '.' && isUploadId(id) ? id : undefined;
}

export function uploadChunkKey(uploadId: string, offset: number): string {
  return `${uploadPrefix(uploadId)}${String(offset).padStart(16, '0')}-${randomBytes(6).toString('hex')}`;
}

export function uploadAssemblyKey(uploadId: string): string {
  return `${uploadPrefix(uploadId)}assembled-${randomBytes(6).toString('hex')}`;
}
