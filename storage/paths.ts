// Every storage key is built here, only from validated digests and upload ids, so no request can
// name a key outside these trees:
//
//   blobs/<algorithm>/<first two hex>/<hex>      content-addressed blob data, immutable
//   uploads/<upload id>/<offset>-<nonce>         one object per received chunk of an upload
//   uploads/<upload id>/assembled-<nonce>        a multi-chunk upload being joined and hashed
//
// Chunks are objects of their own (not appended to one file) because S3 cannot append; they are
// joined when the upload is committed.
import { randomBytes } from 'node:crypto';
import type { ParsedDigest } from './digest.js';

const UPLOAD_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUploadId(untrusted: string): boolean {
  return UPLOAD_ID_RE.test(untrusted);
}

export function blobKey(digest: ParsedDigest): string {
  return `blobs/${digest.algorithm}/${digest.hex.slice(0, 2)}/${digest.hex}`;
}

/** The top-level tree holding every upload's objects, one directory (prefix) per upload. */
export const UPLOADS_TREE = 'uploads';

export function uploadPrefix(uploadId: string): string {
  if (!isUploadId(uploadId)) throw new Error(`invalid upload id ${JSON.stringify(uploadId)}`);
  return `${UPLOADS_TREE}/${uploadId}/`;
}

/** The upload a key under the uploads tree belongs to; undefined for any other key. */
export function uploadIdOfKey(key: string): string | undefined {
  const [tree, id] = key.split('/');
  return tree === UPLOADS_TREE && id !== undefined && isUploadId(id) ? id : undefined;
}

export function uploadChunkKey(uploadId: string, offset: number): string {
  return `${uploadPrefix(uploadId)}${String(offset).padStart(16, '0')}-${randomBytes(6).toString('hex')}`;
}

export function uploadAssemblyKey(uploadId: string): string {
  return `${uploadPrefix(uploadId)}assembled-${randomBytes(6).toString('hex')}`;
}
