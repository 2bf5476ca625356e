// Manifests read the way the clients read them. Go's encoding/json (docker, containerd,
// containers/image, crane, oras) fills a field from any key equal to its name under case folding,
// the last one winning; the registry's JSON.parse is exact. The properties play a developer who
// spells a spec field any other way, anywhere in a manifest or an index: the document is refused,
// so the registry, its gate and the clients never read two different documents from one.
import test from 'ava';
import fc from 'fast-check';
import { ManifestInvalidError } from '../../storage/errors.js';
import { ambiguousFields, jsonObjectOf, MAX_MANIFEST_DEPTH, MEDIA_TYPES, parseManifest } from '../../storage/manifest-parse.js';

const hex = (c: string): string => `sha256:${c.repeat(64)}`;
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: hex('a'), size: 10 };
type Json = Record<string, unknown>;
interface Doc extends Json {
  mediaType: string;
  config?: Json;
  layers?: Json[];
  manifests?: (Json & { platform: Json })[];
}

const image = (): Doc => ({
  schemaVersion: 2,
  mediaType: MEDIA_TYPES.ociManifest,
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: hex('b'), size: 2 },
  layers: [{ ...layer }],
  annotations: { 'org.opencontainers.image.title': 'x' },
});
const index = (): Doc => ({
  schemaVersion: 2,
  mediaType: MEDIA_TYPES.ociIndex,
  manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: hex('c'), size: 300, platform: { os: 'linux', architecture: 'amd64' } }],
});

/** The spec fields each place in a document holds, and how to reach that place. */
const PLACES: [string, (doc: Doc) => Json, () => Doc, string[]][] = [
  ['image', (d) => d, image, ['schemaVersion', 'mediaType', 'artifactType', 'config', 'layers', 'subject', 'annotations']],
  ['config descriptor', (d) => d.config!, image, ['mediaType', 'digest', 'size', 'urls', 'annotations', 'data']],
  ['layer descriptor', (d) => d.layers![0]!, image, ['mediaType', 'digest', 'size', 'urls', 'annotations', 'data', 'artifactType']],
  ['index', (d) => d, index, ['schemaVersion', 'mediaType', 'manifests', 'subject', 'annotations']],
  ['index entry', (d) => d.manifests![0]!, index, ['mediaType', 'digest', 'size', 'platform']],
  ['platform', (d) => d.manifests![0]!.platform, index, ['os', 'architecture', 'variant', 'os.version', 'os.features']],
];

/** A spelling of `field` that Go's case folding matches and that is not `field` itself. */
const otherSpelling = (field: string) =>
  fc
    .array(fc.constantFrom('lower', 'upper', 'unicode'), { minLength: field.length, maxLength: field.length })
    .map((choices) =>
      [...field]
        .map((c, i) =>
          choices[i] === 'upper'
            ? c.toUpperCase()
            : choices[i] === 'unicode' && /[sSkK]/.test(c)
              ? /[sS]/.test(c)
                ? '\u017f'
                : '\u212a'
              : c.toLowerCase(),
        )
        .join(''),
    )
    .filter((spelling) => spelling !== field);

const bytes = (doc: unknown) => Buffer.from(JSON.stringify(doc));

test('property: a spec field spelt any other way, at any place, refuses the document and names the key', (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(...PLACES).chain(([place, at, make, fields]) =>
        fc.tuple(
          fc.constant(place),
          fc.constant(at),
          fc.constant(make),
          fc.constantFrom(...fields).chain((f) => fc.tuple(fc.constant(f), otherSpelling(f))),
        ),
      ),
      fc.jsonValue(),
      fc.boolean(),
      ([place, at, make, [field, spelling]], value, before) => {
        const doc = make();
        const target = at(doc);
        // Before or after the exact key: Go takes the last one, whichever it is.
        const rebuilt = before ? { [spelling]: value, ...target } : { ...target, [spelling]: value };
        for (const key of Object.keys(target)) delete target[key];
        Object.assign(target, rebuilt);
        const error = t.throws(() => parseManifest(bytes(doc), doc.mediaType), { instanceOf: ManifestInvalidError }, place);
        t.true(error?.message.includes(`${JSON.stringify(spelling)} (read as ${field})`), `${place}: ${error?.message}`);
        t.true(ambiguousFields(doc, doc.mediaType).length > 0, 'the gate sees it too');
      },
    ),
    { numRuns: 300 },
  );
});

test('property: exact spellings, and annotation keys of any spelling, are accepted', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom('Digest', 'SIZE', 'Layers', 'layerſ', 'mediatype', 'org.opencontainers.image.title', 'Config'), {
        maxLength: 4,
      }),
      (keys) => {
        const doc = image();
        doc.annotations = Object.fromEntries(keys.map((k) => [k, 'v']));
        doc.layers![0]!.annotations = Object.fromEntries(keys.map((k) => [k, 'v']));
        t.notThrows(() => parseManifest(bytes(doc), MEDIA_TYPES.ociManifest));
        t.deepEqual(ambiguousFields(doc, MEDIA_TYPES.ociManifest), []);
      },
    ),
  );
  t.notThrows(() => parseManifest(bytes(index()), MEDIA_TYPES.ociIndex));
});

test('a document nested deeper than any recursion would go is judged, not a stack overflow', (t) => {
  const depth = 200_000;
  const deep = `{"schemaVersion":2,"mediaType":"${MEDIA_TYPES.ociManifest}","config":${JSON.stringify(image().config)},"x":${'['.repeat(depth)}{"Layers":1}${']'.repeat(depth)}}`;
  // V8's JSON.parse takes this depth; a recursive walk of it would not.
  const parsed = JSON.parse(deep) as Record<string, unknown>;
  t.deepEqual(ambiguousFields(parsed, MEDIA_TYPES.ociManifest), ['"Layers" (read as layers)']);
});

test('nesting: up to the bound is a manifest, deeper is refused before it is parsed, and a stored one reads as no object', (t) => {
  const nested = (depth: number): Buffer => {
    // The document itself is one level; `x` adds the rest (strings with brackets do not count).
    const inner = `${'['.repeat(depth - 1)}"[{"${']'.repeat(depth - 1)}`;
    return Buffer.from(JSON.stringify({ ...image(), x: 0 }).replace('"x":0', `"x":${inner}`));
  };
  t.notThrows(() => parseManifest(nested(MAX_MANIFEST_DEPTH), MEDIA_TYPES.ociManifest));
  const error = t.throws(() => parseManifest(nested(MAX_MANIFEST_DEPTH + 1), MEDIA_TYPES.ociManifest), {
    instanceOf: ManifestInvalidError,
  });
  t.regex(error?.message ?? '', /nests deeper than 64 levels/);
  // 4 MiB of brackets, as a developer pushed them before the bound: no parse, no object.
  const deep = Buffer.from(`{"schemaVersion":2,"x":${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}}`);
  t.deepEqual(jsonObjectOf(deep), {});
  t.throws(() => parseManifest(deep, MEDIA_TYPES.ociManifest), { instanceOf: ManifestInvalidError });
});
