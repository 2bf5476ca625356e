// The content-addressed layer over the filesystem store (the suite itself is shared with S3).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { blobsConformance } from '../conformance/blobs.js';

blobsConformance(test, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'signet-blobs-'));
  return {
    store: createFilesystemBlobStore({ rootDirectory: dir }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
