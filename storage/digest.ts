// Digests as the OCI image spec defines them, restricted to the algorithms we can verify.
import { createHash } from 'node:crypto';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** The canonical `algorithm:hex` string. */
  digest: string;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
/** The spec's general digest grammar: anything of this shape is a digest, verifiable or not. */
const DIGEST_SHAPE_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** Parses a digest we can verify; `undefined` for anything else. */
export function parseDigest(untrusted: string): ParsedDigest | undefined {
  if (!DIGEST_RE.test(untrusted)) return undefined;
  const colon = untrusted.indexOf(':');
  return {
    algorithm: untrusted.slice(0, colon) as DigestAlgorithm,
    hex: untrusted.slice(colon + 1),
    digest: untrusted,
  };
}

/** True when the string has the shape of a digest (so a reference is not a tag). */
export function looksLikeDigest(untrusted: string): boolean {
  return untrusted.includes(':') && DIGEST_SHAPE_RE.test(untrusted);
}

export function digestOf(algorithm: DigestAlgorithm, data: Uint8Array): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}
