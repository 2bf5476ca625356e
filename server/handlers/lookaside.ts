// The lookaside signature store over HTTP, the layout containers/image reads from a `lookaside:`
// (older: `sigstore:`) URL in registries.d (docker/docker_image_src.go, lookaside.go):
//   <base>/<repository path>@sha256=<hex>/signature-<N>, N = 1, 2, ... until the first 404.
// The client sends no registry credentials (userinfo in the URL becomes Basic auth) and aborts
// the pull on any status but 200 and 404, even when its policy needs no signature: so reads answer
// 200 or 404 only, and a caller without pull permission sees 404, exactly as if nothing existed.
// PUT and DELETE (maintainers) let signatures made elsewhere be uploaded and removed.
import { allowed, capture, emptyResponse, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { requireName } from '../oci-names.js';
import { isValidName } from '../../storage/oci-grammar.js';
import { readBody } from '../request-body.js';
import { readSignedMessage } from '../../sigstore/openpgp-signature.js';
import { MAX_SIGNATURE_BYTES } from '../../storage/signature-store.js';

function parseTarget(ctx: Ctx): { name: string; digest: string; position: number } | undefined {
  const name = capture(ctx, 0);
  const position = Number(capture(ctx, 2));
  if (!isValidName(name) || !Number.isSafeInteger(position) || position < 1) return undefined;
  return { name, digest: `sha256:${capture(ctx, 1)}`, position };
}

export function createLookasideHandlers(deps: Pick<RegistryDeps, 'signatures' | 'authorizer'>) {
  const { signatures } = deps;

  return {
    async get(ctx: Ctx): Promise<void> {
      const target = parseTarget(ctx);
      const visible = target && (await allowed(ctx, deps, 'pull', target.name));
      const signature = visible ? (await signatures.list(target.name, target.digest))[target.position - 1] : undefined;
      if (!signature) {
        // A plain 404 (not the OCI error body): some readers treat any body as content.
        ctx.status = 404;
        ctx.body = null;
        ctx.status = 404;
        return;
      }
      ctx.type = 'application/octet-stream';
      ctx.set('Cache-Control', 'no-cache');
      // For a DELETE that must remove this signature and no other (If-Match): numbers move down.
      ctx.set('ETag', `"${signature.contentDigest}"`);
      ctx.status = 200;
      if (ctx.method === 'HEAD') {
        ctx.set('Content-Length', String(signature.content.length));
        return;
      }
      ctx.body = signature.content;
    },

    async put(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'sign', name);
      const target = parseTarget(ctx);
      if (!target) throw new OciError('NOT_FOUND', 'signatures are numbered from 1');
      const body = await readBody(ctx, {
        limit: MAX_SIGNATURE_BYTES,
        tooLarge: () => new OciError('SIGNATURE_TOO_LARGE', `a signature may be at most ${MAX_SIGNATURE_BYTES} bytes`),
      });
      const existing = await signatures.list(name, target.digest);
      // Dense numbering: signature-N may only be the next one. Re-sending stored bytes is a no-op;
      // other bytes at a taken number are refused, never silently replaced.
      if (target.position > existing.length + 1) {
        throw new OciError('CONFLICT', `the next free number is signature-${existing.length + 1}`, { next: existing.length + 1 });
      }
      const taken = existing[target.position - 1];
      if (taken) {
        if (!(await readSignedMessage(body)).binary.equals(taken.content)) {
          throw new OciError('CONFLICT', `signature-${target.position} holds another signature; DELETE it first`);
        }
        emptyResponse(ctx, 200);
        return;
      }
      const result = await signatures.accept(name, target.digest, body, {
        ...(ctx.state.principal.user ? { actor: ctx.state.principal.user } : {}),
        untrustedAllowed: true, // writing the lookaside takes the maintainers' `sign` permission
      });
      if (result.result === 'no-manifest') throw new OciError('MANIFEST_UNKNOWN', `manifest ${target.digest} is not in ${name}`);
      if (result.result === 'full') throw new OciError('CONFLICT', result.message);
      if (result.result === 'duplicate' && result.position !== target.position) {
        throw new OciError('SIGNATURE_EXISTS', `these bytes are stored as signature-${result.position}`, { position: result.position });
      }
      // Another writer may have taken that number meanwhile: the signature is stored all the same,
      // and Location says under which number (an error here would hide a write that happened).
      ctx.set('Location', ctx.path.replace(/signature-\d+$/, `signature-${result.position}`));
      emptyResponse(ctx, result.result === 'created' ? 201 : 200);
    },

    async delete(ctx: Ctx): Promise<void> {
      const name = requireName(capture(ctx, 0));
      await requireAccess(ctx, deps, 'sign', name);
      const target = parseTarget(ctx);
      // Numbers are dense (containers/image reads signature-1.. until the first 404), so after a
      // removal the next signature takes its number: a retried or concurrent DELETE would remove
      // that one too. With If-Match (the ETag a GET gave), only the signature named goes.
      const ifMatch = ctx.get('If-Match');
      const expected = ifMatch === '' ? undefined : /^"(sha256:[a-f0-9]{64})"$/.exec(ifMatch.trim())?.[1];
      if (ifMatch !== '' && expected === undefined)
        throw new OciError('PRECONDITION_FAILED', 'If-Match must be the ETag a GET of the signature gave');
      const removed =
        target !== undefined &&
        (await signatures.removeAt(name, target.digest, target.position, {
          ...(ctx.state.principal.user ? { actor: ctx.state.principal.user } : {}),
          ...(expected ? { contentDigest: expected } : {}),
        }));
      if (!removed) {
        const there = target && (await signatures.list(name, target.digest))[target.position - 1];
        if (there && expected) throw new OciError('PRECONDITION_FAILED', `signature-${target.position} is another signature now`);
        throw new OciError('NOT_FOUND', 'no such signature');
      }
      ctx.state.log.info({ repository: name, digest: target.digest, position: target.position }, 'signature deleted');
      emptyResponse(ctx, 204);
    },
  };
}
