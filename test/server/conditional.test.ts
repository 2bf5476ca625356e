// If-None-Match (RFC 9110 §13.1.2) on manifest and blob GETs: the ETag alone, `*`, or in a list with
// others (weakly compared) answers 304; anything else, a malformed header included, the full answer.
import test from 'ava';
import fc from 'fast-check';
import { ifNoneMatch } from '../../server/context.js';
import { createClient } from '../helpers/oci-client.js';
import { makeImage, randomLayer } from '../helpers/oci-layout.js';
import { startTestRegistry } from '../helpers/registry.js';

const ETAG = `"sha256:${'a'.repeat(64)}"`;
const OTHER = `"sha256:${'b'.repeat(64)}"`;

test('the ETag alone, `*`, or anywhere in a list, weak or strong, matches', (t) => {
  for (const header of [
    ETAG,
    '*',
    ' * ',
    `${OTHER}, ${ETAG}`,
    `${OTHER},${ETAG}`,
    `W/${ETAG}`,
    `${OTHER} ,\tW/${ETAG} , "x"`,
    `"a,b", ${ETAG}`,
  ]) {
    t.true(ifNoneMatch(header, ETAG), header);
  }
  for (const header of [
    OTHER,
    '',
    '""',
    ETAG.slice(1, -1),
    `${OTHER}, "sha256:${'a'.repeat(63)}"`,
    `"unterminated, ${ETAG}`,
    `${OTHER} junk ${ETAG}`,
    `**`,
    `"*"`,
  ]) {
    t.false(ifNoneMatch(header, ETAG), header);
  }
});

test('property: a well-formed list matches exactly when it holds the ETag', (t) => {
  const tag = fc.stringMatching(/^[!#-~]{0,20}$/).map((s) => `"${s}"`);
  const entry = fc.tuple(fc.boolean(), tag).map(([weak, value]) => (weak ? `W/${value}` : value));
  const gap = fc.constantFrom(',', ', ', ' ,', ' , ', ',\t');
  fc.assert(
    fc.property(fc.array(entry, { minLength: 1, maxLength: 6 }), fc.array(gap, { minLength: 6, maxLength: 6 }), (entries, gaps) => {
      const header = entries.reduce((list, e, i) => (i === 0 ? e : `${list}${gaps[i]}${e}`), '');
      const holds = entries.some((e) => e.replace(/^W\//, '') === ETAG);
      return ifNoneMatch(header, ETAG) === holds;
    }),
  );
  t.pass();
});

test('manifest and blob GET and HEAD answer 304 to the ETag in a list, 200 otherwise', async (t) => {
  const registry = await startTestRegistry();
  t.teardown(() => registry.close());
  const client = createClient(registry.url);
  const image = makeImage({ layers: 1 });
  t.is((await client.pushImage('cond/app', image, 'v1')).status, 201);
  const layer = randomLayer(1000);
  t.is((await client.pushBlob('cond/app', layer)).status, 201);
  for (const [path, digest] of [
    ['/v2/cond/app/manifests/v1', image.manifest.digest],
    ['/v2/cond/app/blobs/' + layer.digest, layer.digest],
  ] as const) {
    for (const method of ['GET', 'HEAD']) {
      const list = await client.request(path, { method, headers: { 'If-None-Match': `"sha256:${'0'.repeat(64)}", "${digest}"` } });
      t.is(list.status, 304, `${method} ${path}: list`);
      t.is(list.headers.get('etag'), `"${digest}"`);
      const any = await client.request(path, { method, headers: { 'If-None-Match': '*' } });
      t.is(any.status, 304, `${method} ${path}: *`);
      const other = await client.request(path, { method, headers: { 'If-None-Match': `"sha256:${'0'.repeat(64)}"` } });
      t.is(other.status, 200, `${method} ${path}: another ETag`);
      await other.arrayBuffer();
    }
  }
});
