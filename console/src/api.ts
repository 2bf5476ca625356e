// The console's one way to the server: the management API under /api/v1, as any client uses it.
// Signed in, the browser's session cookie authenticates; every write carries the session's CSRF
// token. X-Signet-Console asks the server not to answer 401 with a Basic challenge (which would
// make the browser prompt for a password instead of showing the sign-in form).

export interface SessionInfo {
  authEnabled: boolean;
  user?: string;
  admin: boolean;
  /** Signed in as a robot account: it reads its own project and nothing else. */
  robot?: { project: string; role: string; readOnly: boolean };
  csrfToken?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

let csrfToken: string | undefined;

export function setCsrfToken(token: string | undefined): void {
  csrfToken = token;
}

async function failure(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`;
  let code: string | undefined;
  try {
    const body = (await res.json()) as { errors?: { code?: string; message?: string }[] };
    const first = body.errors?.[0];
    if (first?.message) message = first.message;
    code = first?.code;
  } catch {
    // not the registry's error shape: the status says enough
  }
  return new ApiError(res.status, message, code);
}

export async function call(method: string, path: string, body?: unknown, raw?: BodyInit): Promise<Response> {
  const headers: Record<string, string> = { 'X-Signet-Console': '1' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : raw !== undefined ? { body: raw } : {}),
  });
  if (!res.ok) throw await failure(res);
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await call('GET', path)).json() as Promise<T>;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T | undefined> {
  const res = await call(method, path, body);
  return res.status === 204 ? undefined : ((await res.json()) as T);
}

export async function getText(path: string): Promise<string> {
  return (await call('GET', path)).text();
}

export const enc = encodeURIComponent;
