// Reading a request body that is held in memory (manifests, signatures, keys, management API
// bodies): always with a limit, and every way a body can be wrong mapped to a 4xx OCI error. Blobs
// never come through here: they stream (server/handlers/uploads.ts).
import type * as z from 'zod';
import type { Ctx } from './context.js';
import { OciError } from './errors.js';

/** Management API bodies (projects, members, garbage collection). */
const API_BODY_LIMIT = 64 * 1024;

export interface BodyOptions {
  /** Bytes; a longer body is refused before more than this is read. */
  limit: number;
  /** The error for a body over the limit; default 413 REQUEST_INVALID naming the limit. */
  tooLarge?: () => OciError;
}

export interface JsonBodyOptions extends Partial<BodyOptions> {
  /** The error for a body that is not JSON or does not fit the schema; default 400 REQUEST_INVALID. */
  invalid?: (message: string, detail?: unknown) => OciError;
  /** What an empty body stands for (for bodies whose every field is optional); default: refused. */
  empty?: unknown;
}

/** The raw-body failures that are the client's doing, by the `type` raw-body gives them. */
function mapReadError(err: unknown, options: BodyOptions): unknown {
  const type = (err as { type?: string }).type;
  if (type === 'entity.too.large') {
    return (
      options.tooLarge?.() ?? new OciError('BODY_TOO_LARGE', `the request body exceeds ${options.limit} bytes`, { limit: options.limit })
    );
  }
  if (type === 'request.size.invalid') return new OciError('SIZE_INVALID', 'body length does not match Content-Length');
  // request.aborted and the like: the client is gone, and the error middleware says so (499).
  return err;
}

/** The whole body, at most `limit` bytes. */
export async function readBody(ctx: Ctx, options: BodyOptions): Promise<Buffer> {
  const length = ctx.get('Content-Length');
  try {
    // Loaded on the first body read, not at start-up (30 ms of a restart; issue 22).
    const { default: getRawBody } = await import('raw-body');
    return await getRawBody(ctx.req, { limit: options.limit, ...(length ? { length } : {}) });
  } catch (err) {
    const mapped = mapReadError(err, options);
    // Refused unread: closing the connection is cheaper than draining what is left of the body.
    if (mapped instanceof OciError) ctx.set('Connection', 'close');
    throw mapped;
  }
}

/** Where and what, for each way a value failed its schema, so a client can fix its request. */
function describeIssues(error: z.ZodError): { message: string; issues: { path: string; message: string }[] } {
  const issues = error.issues.map((issue) => ({ path: issue.path.map(String).join('.') || '(body)', message: issue.message }));
  return { message: issues.map((i) => `${i.path}: ${i.message}`).join('; '), issues };
}

/** A JSON body validated by `schema` (API_BODY_LIMIT unless a limit is given). */
export async function readJsonBody<S extends z.ZodType>(ctx: Ctx, schema: S, options: JsonBodyOptions = {}): Promise<z.output<S>> {
  const invalid = options.invalid ?? ((message: string, detail?: unknown) => new OciError('REQUEST_INVALID', message, detail));
  const limit = options.limit ?? API_BODY_LIMIT;
  const text = (await readBody(ctx, { limit, ...(options.tooLarge ? { tooLarge: options.tooLarge } : {}) })).toString('utf8');
  let value: unknown = options.empty;
  if (text.trim() !== '' || options.empty === undefined) {
    try {
      value = JSON.parse(text);
    } catch {
      throw invalid('the body must be JSON');
    }
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const { message, issues } = describeIssues(result.error);
    throw invalid(`invalid request body: ${message}`, { issues });
  }
  return result.data;
}
