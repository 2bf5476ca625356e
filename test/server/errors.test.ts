// Every error the storage layer throws at a request's bidding maps to a 4xx OCI error, never to
// a bare 500 (server/errors.ts, toOciError).
import test from 'ava';
import { OciError, ociErrorBody, toOciError } from '../../server/errors.js';
import { InvalidStorageKeyError, StorageNotFoundError } from '../../storage/errors.js';
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

test('a missing object is a 404 BLOB_UNKNOWN', (t) => {
  t.is(toOciError(new StorageNotFoundError('blobs/x'))?.status, 404);
  t.is(toOciError(new StorageNotFoundError('blobs/x'))?.code, 'BLOB_UNKNOWN');
});

test('a code registered with another status keeps the spec code on the wire', (t) => {
  const err = new OciError('MANIFEST_TOO_LARGE');
  t.is(err.status, 413);
  t.is(err.code, 'SIZE_INVALID');
  t.is((JSON.parse(ociErrorBody(err)) as { errors: { code: string }[] }).errors[0]?.code, 'SIZE_INVALID');
});

test('an error that is no domain error is an internal error', (t) => {
  t.is(toOciError(new Error('bug')), undefined);
});
