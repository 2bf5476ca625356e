// POST /api/v1/projects/<p>/mirror/run {repository, tags}: copies the upstream repository's tags
// matching the glob into the mirror project (what `signet mirror run` calls; project admins).
// The answer streams as NDJSON: one {"progress": …} line per tag, then {"report": …} (or
// {"error": …}), as garbage collection's does.
import { PassThrough } from 'node:stream';
import * as z from 'zod';
import { runMirror } from '../../mirror/mirror-run.js';
import { capture, requireAccess, type Ctx, type RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { isValidName } from '../../storage/oci-grammar.js';
import { readJsonBody } from '../request-body.js';

const RUN_BODY = z.strictObject({ repository: z.string().min(1).max(255), tags: z.string().min(1).max(255).optional() });

export function createMirrorApiHandlers(deps: Pick<RegistryDeps, 'authorizer' | 'pullThrough' | 'metadata'>) {
  return {
    async run(ctx: Ctx): Promise<void> {
      const project = capture(ctx, 0);
      await requireAccess(ctx, deps, 'admin', project);
      const { repository, tags } = await readJsonBody(ctx, RUN_BODY, { limit: 4096 });
      const name = `${project}/${repository.replace(/^\/+|\/+$/g, '')}`;
      if (!isValidName(name)) throw new OciError('NAME_INVALID', 'invalid repository name', { name });
      const target = await deps.pullThrough.target(name);
      if (!target) throw new OciError('NAME_UNKNOWN', `project ${project} is not a mirror`, { project });
      const out = new PassThrough();
      const line = (value: unknown): void => void out.write(`${JSON.stringify(value)}\n`);
      ctx.status = 200;
      ctx.type = 'application/x-ndjson';
      ctx.body = out;
      const log = ctx.state.log;
      log.info({ repository: name, tags: tags ?? '*', upstream: target.upstream.url }, 'mirror run started');
      runMirror(
        { pullThrough: deps.pullThrough, metadata: deps.metadata, log },
        target,
        { repository: target.path, tags: tags ?? '*' },
        (progress) => line({ progress }),
      )
        .then((report) => {
          log.info({ report }, 'mirror run finished');
          line({ report });
        })
        .catch((err: unknown) => {
          log.error({ err, repository: name }, 'mirror run failed');
          line({ error: (err as Error).message });
        })
        .finally(() => out.end());
    },
  };
}
