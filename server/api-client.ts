// The HTTP client behind the `signet` management commands: the registry's /api/v1 (and lookaside)
// with Basic credentials, every failure put in one line that says what to do.
import { reasonOf, UserFacingError, unreachable } from './failures.js';

export interface ClientSettings {
  registry: string;
  user?: string;
  password?: string;
}

interface ApiError {
  errors?: { code: string; message: string }[];
}

export class ApiCallError extends UserFacingError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

/** The registry's base URL; `localhost:5000` (no scheme) is refused with the two spellings that work. */
function registryBase(untrusted: string): string {
  const trimmed = untrusted.trim().replace(/\/+$/, '');
  let url: URL | undefined;
  try {
    url = new URL(trimmed);
  } catch {
    // no scheme, or not a URL at all
  }
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:') {
    throw new UserFacingError(`--registry (or SIGNET_REGISTRY) ${untrusted} is not a URL: write http://${trimmed} or https://${trimmed}`);
  }
  return trimmed;
}

export function createApiClient(settings: ClientSettings) {
  const base = registryBase(settings.registry);
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (settings.user !== undefined) {
    headers.Authorization = `Basic ${Buffer.from(`${settings.user}:${settings.password ?? ''}`).toString('base64')}`;
  }
  async function send(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(`${base}${path}`, init);
    } catch (err) {
      throw unreachable(base, err);
    }
  }
  /** The first error of an OCI error body, with what to do about a refused login. */
  function failure(res: Response, text: string): { text: string; code?: string } {
    let message = `${res.status} ${res.statusText}`;
    let code: string | undefined;
    try {
      const err = (JSON.parse(text) as ApiError).errors?.[0];
      if (err) [code, message] = [err.code, `${err.code}: ${err.message}`];
    } catch {
      // not JSON: keep the status line
    }
    if (res.status === 401) {
      message +=
        settings.user === undefined
          ? '; log in with --user NAME (password in SIGNET_PASSWORD or --password-stdin)'
          : `; check the password of ${settings.user}`;
    }
    return { text: message, ...(code ? { code } : {}) };
  }
  async function raw(
    method: string,
    path: string,
    body?: Uint8Array | string,
    contentType?: string,
  ): Promise<{ status: number; text: string; code?: string }> {
    const res = await send(path, {
      method,
      headers: contentType ? { ...headers, 'Content-Type': contentType } : headers,
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : new Uint8Array(body) }),
    });
    const text = await res.text().catch((err: unknown) => {
      throw unreachable(base, err);
    });
    return res.ok ? { status: res.status, text } : { status: res.status, ...failure(res, text) };
  }
  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await raw(
      method,
      path,
      body === undefined ? undefined : JSON.stringify(body),
      body === undefined ? undefined : 'application/json',
    );
    if (res.status >= 400) throw new ApiCallError(res.status, res.text);
    try {
      return (res.text ? JSON.parse(res.text) : undefined) as T;
    } catch (err) {
      throw new ApiCallError(
        res.status,
        `${base}${path} answered with something that is not JSON (${reasonOf(err)}): is ${base} a Signet registry?`,
      );
    }
  }
  /** The response itself, for streamed answers (garbage collection progress). */
  async function stream(method: string, path: string, body: unknown): Promise<Response> {
    return send(path, { method, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  }
  return Object.assign(call, { raw, stream });
}

export type Call = ReturnType<typeof createApiClient>;
