// Run under strace by directory-sync.test.ts: a few writes and moves through the filesystem
// store into directories that do not exist yet, and one large write, then the keys used, as JSON
// on standard output.
import { randomBytes, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { digestOf, parseDigest } from '../../storage/digest.js';
import { createFilesystemBlobStore } from '../../storage/filesystem-blob-store.js';
import { blobKey, uploadChunkKey } from '../../storage/paths.js';

const root = process.argv[2]!;
const store = createFilesystemBlobStore({ rootDirectory: root });
const body = (): Readable => Readable.from([randomBytes(1000)], { objectMode: false });
const freshBlobKey = (): string => blobKey(parseDigest(digestOf('sha256', randomBytes(32)))!);

const written = freshBlobKey();
await store.write(written, body());
const chunk = uploadChunkKey(randomUUID(), 0);
await store.write(chunk, body());
const moved = freshBlobKey();
await store.move(chunk, moved);
// 9 MiB in 64 KiB pieces, as an HTTP body arrives.
const piece = randomBytes(64 * 1024);
const large = freshBlobKey();
await store.write(large, Readable.from(Array.from({ length: 144 }, () => piece)));
process.stdout.write(JSON.stringify({ written, chunk, moved, large }));
