// The signature API extension of OpenShift's registry, as containers/image uses it when GET /v2/
// answers with `X-Registry-Supports-Signatures: 1` (docker/docker_client.go, docker_image_src.go,
// docker_image_dest.go):
//   GET /extensions/v2/<name>/signatures/<digest> → 200 {"signatures":[{schemaVersion, name, type, content}]}
//     Any status but 200 (404 included) breaks the client's pull, so "none" is 200 with [].
//   PUT the same path with one such object → 201. The client first GETs and skips content that is
//     already there; a duplicate is 409, a bad object 400 (as OpenShift answers).
import * as z from 'zod';
import { allowed, capture, emptyResponse, requireAccess, type Ctx, type RegistryDeps, jsonBody } from '../context.js';
import { OciError } from '../errors.js';
import { requireDigest, requireName } from '../oci-names.js';
import { readJsonBody } from '../request-body.js';
import { MAX_SIGNATURE_BYTES } from '../../storage/signature-store.js';

const SCHEMA_VERSION = 2;
/** containers/image's limit on the extension list (iolimits.maxSignatureListBodySize), less some slack. */
const EXTENSION_LIST_LIMIT = 4 * 1024 * 1024 - 4096;
const TYPE_ATOMIC = 'atomic';

export function createExtensionHandlers(deps: Pick<RegistryDeps, 'signatures' | 'authorizer'>) {
  const { signatures } = deps;

  return {
    async list(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'pull', name);
      const digest = requireDigest(capture(ctx, 1));
      const stored = await signatures.list(name, digest.digest);
      // containers/image reads at most 4 MiB of this list. Writes keep a manifest's signatures far
      // below that (signature-store.ts); signatures stored under older, looser limits are cut off
      // here rather than making the whole list unreadable.
      let budget = EXTENSION_LIST_LIMIT;
      const entries = [];
      for (const s of stored) {
        const entry = { schemaVersion: SCHEMA_VERSION, name: s.name, type: TYPE_ATOMIC, content: s.content.toString('base64') };
        budget -= entry.content.length + entry.name.length + 80;
        if (budget < 0) break;
        entries.push(entry);
      }
      jsonBody(ctx, { signatures: entries });
    },

    async put(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'push', name);
      const digest = requireDigest(capture(ctx, 1));
      const body = await readJsonBody(ctx, z.unknown(), {
        // base64 and JSON around a signature of at most MAX_SIGNATURE_BYTES
        limit: Math.ceil(MAX_SIGNATURE_BYTES * 1.4) + 4096,
        tooLarge: () => new OciError('SIGNATURE_TOO_LARGE', `a signature may be at most ${MAX_SIGNATURE_BYTES} bytes`),
        invalid: () => new OciError('SIGNATURE_INVALID', 'the body must be a JSON signature object'),
      });
      const sig = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
      if (sig.schemaVersion !== SCHEMA_VERSION) throw new OciError('SIGNATURE_INVALID', `schemaVersion must be ${SCHEMA_VERSION}`);
      if (sig.type !== TYPE_ATOMIC) throw new OciError('SIGNATURE_INVALID', `type must be "${TYPE_ATOMIC}"`);
      if (typeof sig.name !== 'string') throw new OciError('SIGNATURE_INVALID', 'name is required');
      if (typeof sig.content !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(sig.content)) {
        throw new OciError('SIGNATURE_INVALID', 'content must be base64');
      }
      const result = await signatures.accept(name, digest.digest, Buffer.from(sig.content, 'base64'), {
        name: sig.name,
        ...(ctx.state.principal.user ? { actor: ctx.state.principal.user } : {}),
        untrustedAllowed: await allowed(ctx, deps, 'sign', name),
      });
      switch (result.result) {
        case 'no-manifest':
          throw new OciError('MANIFEST_UNKNOWN', `manifest ${digest.digest} is not in ${name}`);
        case 'full':
          throw new OciError('CONFLICT', result.message);
        case 'duplicate':
          throw new OciError('SIGNATURE_EXISTS', 'this signature is already stored', { position: result.position });
        case 'created':
          ctx.state.log.info({ repository: name, digest: digest.digest, position: result.position }, 'signature stored');
          emptyResponse(ctx, 201);
      }
    },
  };
}
