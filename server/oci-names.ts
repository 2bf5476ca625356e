// Parsing of repository names, tags and references from requests (the grammars: storage/oci-grammar.ts).
import { looksLikeDigest, parseDigest, type ParsedDigest } from '../storage/digest.js';
import { isValidName, isValidTag } from '../storage/oci-grammar.js';
import { OciError } from './errors.js';

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
