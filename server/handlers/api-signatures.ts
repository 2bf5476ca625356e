// GET /api/v1/projects/<p>/repositories/<r>/signatures/<digest>: an image's stored simple
// signatures with who signed them, what they name, and whether the project trusts the signer.
import { capture, requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { OciError } from '../errors.js';
import { requireDigest } from '../oci-names.js';
import { isValidName } from '../../storage/oci-grammar.js';

export function createSignatureListHandler(deps: Pick<RegistryDeps, 'signatures' | 'authorizer'>) {
  const { signatures } = deps;
  return async (ctx: Ctx): Promise<void> => {
    const repository = `${capture(ctx, 0)}/${capture(ctx, 1)}`;
    if (!isValidName(repository)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: repository });
    await requireAccess(ctx, deps, 'pull', repository);
    const digest = requireDigest(capture(ctx, 2));
    const list = await signatures.listWithTrust(repository, digest.digest);
    jsonBody(ctx, {
      repository,
      digest: digest.digest,
      signatures: list.map((s) => ({
        position: s.position,
        name: s.name,
        signerKeyId: s.signerKeyId.toUpperCase(),
        ...(s.signerFingerprint ? { signerFingerprint: s.signerFingerprint.toUpperCase() } : {}),
        identity: s.identity,
        signedAt: s.signedAt.toISOString(),
        trusted: s.trusted,
        ...(s.reason ? { reason: s.reason } : {}),
        ...(s.createdBy ? { uploadedBy: s.createdBy } : {}),
        uploadedAt: s.createdAt.toISOString(),
      })),
    });
  };
}
