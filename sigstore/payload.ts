// The simple-signing payload, parsed as strictly as containers/image does
// (signature/simple.go: exact fields in `critical`, `image` and `identity`; `optional` may carry
// unknown fields; creator a string, timestamp an integer).
import { parseDigest } from '../storage/digest.js';
import { parseDockerReference, type DockerReference } from './docker-reference.js';
import { parseStrictJson } from './strict-json.js';
import { DomainError } from '../storage/errors.js';

export const SIGNATURE_TYPE = 'atomic container signature';

export interface SimpleSigningPayload {
  manifestDigest: string;
  dockerReference: string;
  reference: DockerReference;
  creator?: string;
  timestamp?: number;
}

export class SignatureFormatError extends DomainError {
  readonly kind = 'signature-format';
  constructor(message: string) {
    super(message);
    this.name = 'SignatureFormatError';
  }
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SignatureFormatError(`${where} must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function exactFields(value: Record<string, unknown>, fields: string[], where: string): void {
  const keys = Object.keys(value);
  const unknown = keys.filter((k) => !fields.includes(k));
  const missing = fields.filter((f) => !keys.includes(f));
  if (unknown.length > 0) throw new SignatureFormatError(`${where} has unknown field(s) ${unknown.join(', ')}`);
  if (missing.length > 0) throw new SignatureFormatError(`${where} lacks field(s) ${missing.join(', ')}`);
}

export function parsePayload(untrusted: Uint8Array): SimpleSigningPayload {
  let parsed: unknown;
  try {
    parsed = parseStrictJson(new TextDecoder('utf-8', { fatal: true }).decode(untrusted));
  } catch (err) {
    throw new SignatureFormatError(`payload is not valid JSON: ${(err as Error).message}`);
  }
  const top = object(parsed, 'payload');
  exactFields(top, ['critical', 'optional'], 'payload');
  const critical = object(top.critical, 'critical');
  exactFields(critical, ['type', 'image', 'identity'], 'critical');
  if (critical.type !== SIGNATURE_TYPE) throw new SignatureFormatError(`critical.type must be "${SIGNATURE_TYPE}"`);
  const image = object(critical.image, 'critical.image');
  exactFields(image, ['docker-manifest-digest'], 'critical.image');
  const identity = object(critical.identity, 'critical.identity');
  exactFields(identity, ['docker-reference'], 'critical.identity');

  const manifestDigest = image['docker-manifest-digest'];
  // Clients compare only sha256 digests.
  if (typeof manifestDigest !== 'string' || parseDigest(manifestDigest)?.algorithm !== 'sha256') {
    throw new SignatureFormatError('critical.image.docker-manifest-digest must be a sha256 digest');
  }
  const dockerReference = identity['docker-reference'];
  const reference = typeof dockerReference === 'string' ? parseDockerReference(dockerReference) : undefined;
  if (typeof dockerReference !== 'string' || !reference) {
    throw new SignatureFormatError('critical.identity.docker-reference is not a valid image reference');
  }
  if (!reference.tag && !reference.digest) {
    throw new SignatureFormatError('critical.identity.docker-reference must name a tag or a digest');
  }

  const optional = object(top.optional, 'optional');
  const { creator, timestamp } = optional;
  if (creator !== undefined && typeof creator !== 'string') throw new SignatureFormatError('optional.creator must be a string');
  if (timestamp !== undefined && (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp))) {
    throw new SignatureFormatError('optional.timestamp must be an integer');
  }
  return {
    manifestDigest,
    dockerReference,
    reference,
    ...(creator !== undefined ? { creator } : {}),
    ...(timestamp !== undefined ? { timestamp } : {}),
  };
}
