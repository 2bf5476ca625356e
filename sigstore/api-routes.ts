// Management API for trust: a project's public keys, and the signatures of an image with who
// signed them and whether the project trusts that signer.
import { createHash, createPublicKey } from 'node:crypto';
import getRawBody from 'raw-body';
import { capture, emptyResponse, requireAccess, type Ctx, type RegistryDeps } from '../server/context.js';
import { OciError } from '../server/errors.js';
import { isValidName, requireDigest } from '../server/oci-names.js';
import { describeOpenpgpKey, type NewKey, type ProjectKey } from './key-store.js';
import { SignatureFormatError } from './payload.js';
import { projectPolicy, registriesDYaml } from './policy.js';
import { publicHosts } from '../server/config.js';

const KEY_LIMIT = 1024 * 1024;

function keyJson(key: ProjectKey): Record<string, unknown> {
  return {
    id: key.id,
    kind: key.kind,
    fingerprint: key.fingerprint.toUpperCase(),
    keyIds: key.keyIds.map((k) => k.toUpperCase()),
    userIds: key.userIds,
    createdAt: key.createdAt.toISOString(),
    ...(key.createdBy ? { createdBy: key.createdBy } : {}),
  };
}

/** A PEM public key as cosign writes it; its id is the sha256 of the DER SubjectPublicKeyInfo. */
function describePemKey(text: string): NewKey {
  let der: Buffer;
  try {
    der = createPublicKey(text).export({ type: 'spki', format: 'der' });
  } catch (err) {
    throw new SignatureFormatError(`not a PEM public key: ${(err as Error).message}`);
  }
  return {
    kind: 'cosign',
    fingerprint: createHash('sha256').update(der).digest('hex'),
    keyIds: [],
    userIds: [],
    material: Buffer.from(createPublicKey(text).export({ type: 'spki', format: 'pem' }).toString()),
  };
}

export function createTrustApiHandlers(deps: RegistryDeps) {
  const { keys, signatures, projects } = deps;
  /** The name clients use for this registry: the first REGISTRY_HTTP_HOST, else this request's Host. */
  const clientHost = (ctx: Ctx): string => publicHosts(deps.config)[0] ?? ctx.host;

  async function requireProject(name: string): Promise<void> {
    if (!(await projects.find(name))) throw new OciError('NAME_UNKNOWN', `project ${name} not found`);
  }

  return {
    async listKeys(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'pull', project);
      await requireProject(project);
      ctx.body = { keys: (await keys.list(project)).map(keyJson) };
    },

    async addKey(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'admin', project);
      await requireProject(project);
      const body = await getRawBody(ctx.req, { limit: KEY_LIMIT }).catch((err: unknown) => {
        if ((err as { type?: string }).type === 'entity.too.large') throw new OciError('REQUEST_INVALID', 'key too large');
        throw err;
      });
      const text = body.toString('latin1').trimStart();
      const record = text.startsWith('-----BEGIN PUBLIC KEY-----') ? describePemKey(body.toString('utf8')) : (await describeOpenpgpKey(body)).record;
      const actor = ctx.state.principal.user;
      const { id, outcome } = await keys.add(project, record, actor);
      const message = { created: 'trusted key added', updated: 'trusted key updated', unchanged: 'trusted key already present' }[outcome];
      ctx.state.log.info({ project, keyId: id, fingerprint: record.fingerprint, kind: record.kind }, message);
      const stored = (await keys.list(project)).find((k) => k.id === id)!;
      ctx.set('Location', `/api/v1/projects/${project}/keys/${id}`);
      ctx.status = outcome === 'created' ? 201 : 200;
      ctx.body = { ...keyJson(stored), outcome };
    },

    async removeKey(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'admin', project);
      const id = Number(capture(ctx, 1));
      if (!(await keys.remove(project, id, ctx.state.principal.user))) {
        throw new OciError('NAME_UNKNOWN', `project ${project} has no key ${id}`);
      }
      ctx.state.log.info({ project, keyId: id }, 'trusted key removed');
      emptyResponse(ctx, 204);
    },

    /** GET /api/v1/projects/<p>/policy.json[?default=reject|accept] */
    async policy(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'pull', project);
      await requireProject(project);
      const other = ctx.query.default === 'accept' ? 'accept' : 'reject';
      const policy = projectPolicy({ host: clientHost(ctx), project, keys: await keys.list(project), otherImages: other });
      ctx.type = 'application/json';
      ctx.body = `${JSON.stringify(policy, null, 2)}\n`;
    },

    /** GET /api/v1/projects/<p>/registries.d.yaml */
    async registriesD(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'pull', project);
      await requireProject(project);
      const host = clientHost(ctx);
      const cosign = (await keys.list(project)).some((k) => k.kind === 'cosign');
      ctx.type = 'application/yaml';
      ctx.body = registriesDYaml({ host, lookasideUrl: `${ctx.protocol}://${host}${deps.config.signatures.lookaside.path}`, cosign });
    },

    async listSignatures(ctx: Ctx): Promise<void> {
      const repository = `${capture(ctx, 0)}/${capture(ctx, 1)}`;
      if (!isValidName(repository)) throw new OciError('NAME_INVALID', 'invalid repository name', { name: repository });
      await requireAccess(ctx, deps, 'pull', repository);
      const digest = requireDigest(capture(ctx, 2));
      const list = await signatures.listWithTrust(repository, digest.digest);
      ctx.body = {
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
      };
    },
  };
}
