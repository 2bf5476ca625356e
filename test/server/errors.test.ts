// Every error the storage layer throws at a request's bidding maps to a 4xx OCI error, never to
// a bare 500 (server/errors.ts, toOciError).
import test from 'ava';
import { toOciError } from '../../server/errors.js';
import { InvalidStorageKeyError, StorageNotFoundError, UploadNotFoundError } from '../../storage/errors.js';
import { uploadListPrefix } from '../../storage/paths.js';

test('an invalid storage key is a 400 REQUEST_INVALID that does not echo the key', (t) => {
  const oci = toOciError(new InvalidStorageKeyError('../../etc/passwd'));
  t.is(oci?.status, 400);
  t.is(oci?.code, 'REQUEST_INVALID');
  t.notRegex(JSON.stringify({ message: oci?.message, detail: oci?.detail }), /passwd/);
});

test('a malformed upload id asked of storage/paths.ts is an InvalidStorageKeyError', (t) => {
  const err = t.throws(() => uploadListPrefix('../escape'), { instanceOf: InvalidStorageKeyError });
  t.is(toOciError(err)?.status, 400);
});

test('missing objects and uploads are 404s', (t) => {
  t.is(toOciError(new StorageNotFoundError('blobs/x'))?.status, 404);
  t.is(toOciError(new UploadNotFoundError('x'))?.status, 404);
});
