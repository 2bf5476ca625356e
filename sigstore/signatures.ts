// Accepting and listing simple signatures. Everything stored has been parsed as strictly as
// containers/image parses it: a signature clients would reject makes them reject the whole image
// (even beside a valid one), so garbage must never be stored. One by a trusted key must verify.
// A signature by a key the project does not trust is stored (trust is the pull gate's business)
// and listed as untrusted, except in a signed-only project, where only maintainers may store one:
// it can never open the gate there, and a developer could otherwise fill a manifest's signature
// slots (signature-store.ts bounds them) before its signer gets to it.
import { randomBytes } from 'node:crypto';
import { projectOf } from '../auth/authorize.js';
import type { ChangeBus } from '../storage/change-bus.js';
import type { ProjectStore } from '../storage/project-store.js';
import type { Keys } from './keys.js';
import { readSignedMessage, verifySignedMessage } from './openpgp-signature.js';
import { parsePayload, SignatureFormatError } from './payload.js';
import { MAX_SIGNATURE_BYTES, type AddResult, type SignatureRecord, type SignatureStore } from '../storage/signature-store.js';
import { DomainError } from '../storage/errors.js';

export interface StoredSignatureView extends SignatureRecord {
  trusted: boolean;
  /** Why a signature is not trusted. */
  reason?: string;
}

export interface AcceptOptions {
  /** The extension API's signature name (`<digest>@<32 hex>`); made up when absent. */
  name?: string;
  actor?: string;
  /** Whether the caller may store a signature by a key a signed-only project does not trust (maintainers). */
  untrustedAllowed?: boolean;
}

/** A signature the project's policy does not let this caller store (server/errors.ts: 403 DENIED). */
export class SignatureRefusedError extends DomainError {
  readonly kind = 'signature-refused';
  constructor(message: string) {
    super(message);
    this.name = 'SignatureRefusedError';
  }
}

export interface Signatures {
  accept(repository: string, digest: string, untrusted: Uint8Array, options: AcceptOptions): Promise<AddResult>;
  list(repository: string, digest: string): Promise<SignatureRecord[]>;
  listWithTrust(repository: string, digest: string): Promise<StoredSignatureView[]>;
  /** See the store's removeAt; `contentDigest`: only while that signature is at that number. */
  removeAt(repository: string, digest: string, position: number, options?: { actor?: string; contentDigest?: string }): Promise<boolean>;
}

const NAME_RE = /^sha256:[a-f0-9]{64}@[a-f0-9]{32}$/;

export function createSignatures(
  store: SignatureStore,
  keys: Pick<Keys, 'trusted'>,
  projects: Pick<ProjectStore, 'find'>,
  bus: ChangeBus,
): Signatures {
  return {
    async accept(repository, digest, untrusted, options) {
      if (untrusted.length > MAX_SIGNATURE_BYTES) {
        throw new SignatureFormatError(`a signature may be at most ${MAX_SIGNATURE_BYTES} bytes`);
      }
      const name = options.name ?? `${digest}@${randomBytes(16).toString('hex')}`;
      if (!name.startsWith(`${digest}@`) || !NAME_RE.test(name)) {
        throw new SignatureFormatError(`signature name must be "${digest}@<32 hex digits>"`);
      }
      const signed = await readSignedMessage(untrusted);
      const payload = parsePayload(signed.untrustedPayload);
      if (payload.manifestDigest !== digest) {
        throw new SignatureFormatError(`the signature is for manifest ${payload.manifestDigest}, not ${digest}`);
      }
      const project = projectOf(repository);
      const trusted = (await keys.trusted(project)).openpgp;
      if (trusted.some((t) => t.key.getKeyIDs().some((id) => id.toHex() === signed.signerKeyId))) {
        const verification = await verifySignedMessage(signed, trusted);
        if (!verification.verified) throw new SignatureFormatError(verification.reason);
      } else if (!options.untrustedAllowed && (await projects.find(project))?.signedOnly) {
        throw new SignatureRefusedError(
          `key ${signed.signerKeyId.toUpperCase()} is not trusted by project ${project}, which only serves signed images: ` +
            'its signature could never open the gate; only maintainers may store signatures by keys the project does not trust',
        );
      }
      const result = await store.add(repository, digest, {
        name,
        content: signed.binary,
        signerKeyId: signed.signerKeyId,
        ...(signed.signerFingerprint ? { signerFingerprint: signed.signerFingerprint } : {}),
        identity: payload.dockerReference,
        signedAt: signed.created,
        ...(options.actor ? { createdBy: options.actor } : {}),
      });
      if (result.result === 'created') bus.publish({ repository });
      return result;
    },

    list: (repository, digest) => store.list(repository, digest),

    async listWithTrust(repository, digest) {
      const trusted = (await keys.trusted(projectOf(repository))).openpgp;
      const records = await store.list(repository, digest);
      return Promise.all(
        records.map(async (record) => {
          const verification = await verifySignedMessage(await readSignedMessage(record.content), trusted);
          return verification.verified ? { ...record, trusted: true } : { ...record, trusted: false, reason: verification.reason };
        }),
      );
    },

    async removeAt(repository, digest, position, options = {}) {
      const removed = await store.removeAt(repository, digest, position, { project: projectOf(repository), ...options });
      if (removed) bus.publish({ repository });
      return removed;
    },
  };
}
