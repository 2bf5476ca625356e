// The distribution spec's grammars for repository names and tags, and reference parsing.
import { looksLikeDigest, parseDigest, type ParsedDigest } from '../storage/digest.js';
import { OciError } from './errors.js';

// path-component ("/" path-component)*, path-component = [a-z0-9]+ (separator [a-z0-9]+)*
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** distribution's limit on the whole repository name. */
const NAME_MAX = 255;

export function isValidName(untrusted: string): boolean {
  return untrusted.length <= NAME_MAX && NAME_RE.test(untrusted);
}

export function isValidTag(untrusted: string): boolean {
  return TAG_RE.test(untrusted);
}

export function requireName(untrusted: string): string {
  if (!isValidName(untrusted)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: untrusted });
  return untrusted;
}

export function requireDigest(untrusted: string | undefined): ParsedDigest {
  const digest = untrusted === undefined ? undefined : parseDigest(untrusted);
  if (!digest) {
    throw new OciError('DIGEST_INVALID', 'invalid or unsupported digest (sha256 and sha512 are supported)', {
      digest: untrusted ?? null,
    });
  }
  return digest;
}

export type Reference = { kind: 'tag'; tag: string } | { kind: 'digest'; digest: ParsedDigest };

export function parseReference(untrusted: string): Reference {
  if (looksLikeDigest(untrusted)) return { kind: 'digest', digest: requireDigest(untrusted) };
  if (!isValidTag(untrusted)) throw new OciError('TAG_INVALID', 'invalid tag', { tag: untrusted });
  return { kind: 'tag', tag: untrusted };
}
