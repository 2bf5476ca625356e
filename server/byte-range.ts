// The Range header of a blob GET, read as RFC 9110 §14 reads it:
// - a header that is not a valid `bytes=` range set (an unknown unit, broken syntax, an int-range
//   whose last position is before its first) is ignored: the whole blob, 200;
// - a suffix range longer than the blob selects the whole blob (§14.1.2), 206;
// - when no range in the set overlaps the blob (every first position at or past its end, or a
//   zero-length suffix), 416 with `Content-Range: bytes */<size>`;
// - one range (overlapping ones merged) is served as 206; several are answered with the whole
//   blob, which a server may always do.

export type ByteRange =
  /** Serve the whole blob, 200. */
  | { kind: 'whole' }
  /** Serve bytes start..end (inclusive), 206. */
  | { kind: 'range'; start: number; end: number }
  | { kind: 'unsatisfiable' };

const WHOLE: ByteRange = Object.freeze({ kind: 'whole' });
const SPEC_RE = /^(\d*)-(\d*)$/;

interface Span {
  start: number;
  end: number;
}

/** One range-spec: a span within the blob, null when it does not overlap it, undefined when invalid. */
function parseSpec(spec: string, size: number): Span | null | undefined {
  const match = SPEC_RE.exec(spec);
  if (!match) return undefined;
  const [, first, last] = match;
  if (first === '') {
    // suffix-range: the last N bytes, all of them when N exceeds the size.
    if (last === '') return undefined;
    const length = Number(last);
    return length === 0 ? null : { start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? Infinity : Number(last);
  if (end < start) return undefined;
  if (start >= size) return null;
  return { start, end: Math.min(end, size - 1) };
}

/** What to send for `header` on a blob of `size` bytes (more than 0). */
export function parseByteRange(header: string, size: number): ByteRange {
  const equals = header.indexOf('=');
  // Range units are case-insensitive (RFC 9110 §14.1).
  if (equals < 0 || header.slice(0, equals).trim().toLowerCase() !== 'bytes') return WHOLE;
  const specs = header
    .slice(equals + 1)
    .split(',')
    .map((spec) => spec.trim())
    // Empty list elements are allowed by the list syntax (RFC 9110 §5.6.1) and count for nothing.
    .filter((spec) => spec !== '');
  if (specs.length === 0) return WHOLE;
  const spans: Span[] = [];
  for (const spec of specs) {
    const span = parseSpec(spec, size);
    if (span === undefined) return WHOLE;
    if (span !== null) spans.push(span);
  }
  if (spans.length === 0) return { kind: 'unsatisfiable' };
  // Overlapping or adjacent ranges are one range; spans with a gap between them are several.
  spans.sort((a, b) => a.start - b.start);
  const start = spans[0]!.start;
  let end = spans[0]!.end;
  for (const span of spans.slice(1)) {
    if (span.start > end + 1) return WHOLE;
    end = Math.max(end, span.end);
  }
  return { kind: 'range', start, end };
}
