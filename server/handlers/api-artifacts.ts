// Deleting from the management API (what the console's delete buttons call; maintainers):
//   DELETE /api/v1/projects/<p>/repositories/<r>/tags/<tag>           the tag only
//   DELETE /api/v1/projects/<p>/repositories/<r>/manifests/<digest>   the manifest and every tag naming it
// The same rules as DELETE /v2/<name>/manifests/<reference>: the delete role, and
// REGISTRY_STORAGE_DELETE_ENABLED.
import { capture, emptyResponse, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { requireDigest, requireName } from '../oci-names.js';
import { isValidTag } from '../../storage/oci-grammar.js';

export function createArtifactHandlers(deps: Pick<RegistryDeps, 'metadata' | 'authorizer' | 'config'>) {
  const { metadata } = deps;
  async function target(ctx: Ctx): Promise<string> {
    const name = requireName(`${capture(ctx, 0)}/${capture(ctx, 1)}`);
    await requireAccess(ctx, deps, 'delete', name);
    if (!deps.config.storage.delete.enabled) throw new OciError('UNSUPPORTED', 'deletion is disabled on this registry');
    return name;
  }
  return {
    async removeTag(ctx: Ctx): Promise<void> {
      const name = await target(ctx);
      const tag = capture(ctx, 2);
      if (!isValidTag(tag)) throw new OciError('TAG_INVALID', 'invalid tag', { tag });
      if (!(await metadata.tags.remove(name, tag))) throw new OciError('MANIFEST_UNKNOWN', `tag ${tag} not found in ${name}`);
      ctx.state.log.info({ repository: name, tag }, 'tag deleted');
      emptyResponse(ctx, 204);
    },

    async removeManifest(ctx: Ctx): Promise<void> {
      const name = await target(ctx);
      const { digest } = requireDigest(capture(ctx, 2));
      if (!(await metadata.manifests.remove(name, digest)))
        throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest} not found in ${name}`);
      ctx.state.log.info({ repository: name, digest }, 'manifest deleted');
      emptyResponse(ctx, 204);
    },
  };
}
