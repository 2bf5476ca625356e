// The mirror's HTTP client to an upstream registry, authenticating as containers/image does
// (docker/docker_client.go): a request is first sent with what worked before for its scope; on
// 401 the challenge decides: `Bearer realm=…,service=…` → a token from the realm for
// `repository:<path>:pull` (with Basic credentials when configured, anonymously otherwise),
// `Basic` → the credentials. Tokens are kept per scope until shortly before they expire.
//
// Anything that is not an answer from the upstream (connection refused, timeout, 5xx, 429) is an
// UpstreamUnavailableError, so callers can serve what they cached; 404 is `undefined`.
//
// Requests go through undici's `request`, whose bodies are Node.js streams: a cold pull passes
// every byte of a layer through this client, and fetch's web streams (bridged with
// Readable.fromWeb) cost a third more CPU per byte; on the bench machine a cold 256 MiB pull
// through the mirror went from 210-260 to 235-300 MiB/s (a bare relay: 340 to 450). Redirects
// are followed as fetch follows them: registries send blob GETs to a CDN or object store (Docker
// Hub, Quay, Red Hat), and the credentials are dropped when a redirect leaves the registry's origin
// (undici's redirect handler; an S3 presigned URL refuses a request that carries them too).
// undici is loaded with the first upstream request: importing it takes 50-140 ms, which a
// registry without mirror projects should not spend before it answers (bench/, restart rows).
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { digestOf, parseDigest } from '../storage/digest.js';
import { DomainError, tlsTrustCode, TRUST_CA_HINT } from '../storage/errors.js';
import { isValidTag } from '../storage/oci-grammar.js';
import { InternalAddressError, isInternalHost, publicOnlyConnector } from './internal-address.js';

export class UpstreamUnavailableError extends DomainError {
  readonly kind = 'upstream-unavailable';
  constructor(
    readonly upstream: string,
    reason: string,
  ) {
    super(`upstream ${upstream} is unavailable: ${reason}`);
    this.name = 'UpstreamUnavailableError';
  }
}

/** The upstream answered, but not as a registry should (refused credentials, a wrong digest, garbage). */
export class UpstreamError extends DomainError {
  readonly kind = 'upstream-failed';
  constructor(
    readonly upstream: string,
    reason: string,
  ) {
    super(`upstream ${upstream}: ${reason}`);
    this.name = 'UpstreamError';
  }
}

export interface UpstreamOptions {
  /** `http(s)://host[:port][/namespace]` */
  url: string;
  credentials?: { username: string; password: string };
  /** How long a request may wait for the upstream's answer (headers), and for a small body. */
  timeoutMs: number;
}

export interface UpstreamManifest {
  content: Buffer;
  /** Content-Type without parameters. */
  mediaType: string;
  digest: string;
}

export interface UpstreamBlob {
  /** Content-Length when the upstream sent one. */
  size: number | undefined;
  body: Readable;
}

export interface TagListing {
  tags: string[];
  /** Why the listing was not read to its end (too many tags or pages); undefined when it was. */
  stopped?: string;
}

/**
 * Pages of a tag list read at most (a page is at most TAG_PAGE_LIMIT bytes): 1000 pages of 1000
 * tags hold any real repository; an upstream whose next links never end is not followed forever.
 */
const MAX_TAG_PAGES = 1000;
const TAG_PAGE_LIMIT = 16 * 1024 * 1024;

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

const MANIFEST_LIMIT = 4 * 1024 * 1024;

export interface Upstream {
  /** `<namespace>/<path>`: the upstream's name of a repository `path` below the mirror project. */
  readonly url: string;
  /** The upstream's name of the repository at `path` below the mirror project: `<namespace>/<path>`. */
  pathOf(path: string): string;
  manifest(path: string, reference: string): Promise<UpstreamManifest | undefined>;
  /** The digest a tag names now (HEAD), when the upstream says. */
  manifestDigest(path: string, tag: string): Promise<string | undefined>;
  blob(path: string, digest: string): Promise<UpstreamBlob | undefined>;
  /** A blob's size (HEAD), undefined when the upstream does not have it. */
  blobSize(path: string, digest: string): Promise<number | undefined>;
  /**
   * The tags of `path` that `keep` accepts (all by default), read page by page (Link rel="next"),
   * at most `max` of them; `stopped` says why the listing ended before its last page.
   */
  tags(path: string, options?: { keep?: (tag: string) => boolean; max?: number }): Promise<TagListing>;
  /** Whether `GET /v2/` advertises the signature API extension (X-Registry-Supports-Signatures: 1). */
  supportsSignatureExtension(): Promise<boolean>;
  /** A GET of a URL outside the registry API (a lookaside), with no registry credentials. */
  getPlain(url: string, limit: number): Promise<{ status: number; body?: Buffer }>;
  /** A GET of a registry path (extension API) with the repository's credentials; 404 is undefined. */
  getJson(apiPath: string, path: string, limit: number): Promise<unknown>;
}

/** key="value" pairs of a challenge (`Bearer realm="…",service="…"`). */
function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const m of header.slice(space + 1).matchAll(/([A-Za-z_]+)="([^"]*)"/g)) params[m[1]!.toLowerCase()] = m[2]!;
  return { scheme, params };
}

/** An upstream's answer: its status, its headers (the first value of each), its body. */
interface Answer {
  status: number;
  header(name: string): string | undefined;
  body: Dispatcher.ResponseData['body'];
}

const ok = (res: Answer): boolean => res.status >= 200 && res.status < 300;

/**
 * Drops an upstream body unread. undici's body emits 'error' (RequestAbortedError) when destroyed
 * before its end, and an 'error' nobody listens to ends the process: a `.sig` layer announced one
 * byte longer than its descriptor said took the registry down on an anonymous pull (adversarial
 * testing). Every body given up on goes through here.
 */
export function abandonBody(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** Lets the connection go back to the pool without reading a large body (or closes it). */
async function discard(res: Answer): Promise<void> {
  await res.body.dump().catch(() => undefined);
}

/** Reads a body up to `limit` bytes; beyond it the upstream is not sending what it should. */
async function readLimited(res: Answer, limit: number, upstream: string): Promise<Buffer> {
  const declared = Number(res.header('content-length') ?? '0');
  if (declared > limit) {
    abandonBody(res.body);
    throw new UpstreamError(upstream, `answer of ${declared} bytes exceeds ${limit}`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    // Leaving the loop by a throw destroys the body.
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > limit) throw new UpstreamError(upstream, `answer exceeds ${limit} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    // An answer that broke off (reset, or stalled past the timeout) is an upstream away, not a bug.
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamUnavailableError(upstream, `its answer broke off: ${reason(err)}`);
  }
  return Buffer.concat(chunks, total);
}

/** A JSON answer of at most `limit` bytes; one that does not parse is the upstream's fault, not ours. */
async function readJson(res: Answer, limit: number, upstream: string, what: string): Promise<unknown> {
  const text = (await readLimited(res, limit, upstream)).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new UpstreamError(upstream, `${what} is not JSON`);
  }
}

/**
 * Whether undici failed because of what the upstream answered, not because it could not be
 * reached: a redirect loop or a redirect to another scheme (file:, ftp:), headers past undici's
 * bound, a response HTTP cannot parse. The upstream's fault is 502 UPSTREAM_FAILED, as an
 * upstream answering wrongly is; an outage is 503 and lets a cached copy be served (these came
 * back as 503 before; adversarial testing).
 */
function answeredWrongly(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  return code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_HEADERS_OVERFLOW' || code.startsWith('HPE_');
}

/**
 * undici's `request` and every upstream's connections: kept alive between requests, redirects
 * followed (at most 5). A registry behind a corporate proxy mirrors the way its clients pull:
 * through the proxy that HTTPS_PROXY / HTTP_PROXY name (lower-case names too) unless NO_PROXY
 * exempts the host or it is loopback, as containers/image's transport does (pkg/tlsclientconfig:
 * http.ProxyFromEnvironment). https goes through a CONNECT tunnel, http as absolute requests to
 * the proxy, as Go's transport sends them (proxies often allow CONNECT to port 443 only). The
 * settings are read once, with the first request.
 */
let client:
  | Promise<{
      request: typeof import('undici').request;
      /** For upstreams on an internal address (loopback, the LAN): they may send us anywhere. */
      dispatcher: Dispatcher;
      /** For public upstreams: no connection to an internal address, redirects included (internal-address.ts). */
      publicOnly: Dispatcher;
    }>
  | undefined;
function undiciClient(): NonNullable<typeof client> {
  return (client ??= import('undici').then(({ EnvHttpProxyAgent, buildConnector, interceptors, request }) => {
    const agent = (connect?: ReturnType<typeof buildConnector>): Dispatcher =>
      new EnvHttpProxyAgent({ proxyTunnel: false, noProxy: noProxy(), ...(connect ? { connect } : {}) }).compose(
        interceptors.redirect({ maxRedirections: 5 }),
      );
    return { request, dispatcher: agent(), publicOnly: agent(publicOnlyConnector(buildConnector)) };
  }));
}

/** NO_PROXY, and loopback, which Go's http.ProxyFromEnvironment never sends to a proxy either. */
function noProxy(): string {
  const listed = (process.env.no_proxy ?? process.env.NO_PROXY ?? '').trim();
  return listed === '*' ? '*' : [listed, 'localhost', '127.0.0.1', '[::1]'].filter(Boolean).join(',');
}

function reason(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  const untrusted = tlsTrustCode(err);
  if (untrusted) return `its TLS certificate is not trusted (${untrusted}); ${TRUST_CA_HINT}`;
  // undici's own codes (UND_ERR_…) say less than its messages; the system's (ECONNREFUSED) more.
  return code && !code.startsWith('UND_ERR') ? code : (message ?? String(err));
}

type Init = { method?: 'GET' | 'HEAD'; headers?: Record<string, string> };

export function createUpstream(options: UpstreamOptions): Upstream {
  const base = new URL(options.url);
  const origin = base.origin;
  const namespace = base.pathname.replace(/\/+$/, '').replace(/^\//, '');
  const label = options.url;
  const basic = options.credentials
    ? `Basic ${Buffer.from(`${options.credentials.username}:${options.credentials.password}`).toString('base64')}`
    : undefined;
  /** What to send for a scope: a token, or Basic credentials, as the last challenge asked. */
  const authorization = new Map<string, { header: string; expires: number }>();
  let extension: Promise<boolean> | undefined;
  /**
   * Whether the upstream is on an internal address itself, looked up again once a minute (not at
   * every request: a cold pull makes dozens). A public name that moves into private space meanwhile
   * is still refused at connection time by the public-only dispatcher.
   */
  let internal: { until: number; answer: Promise<boolean> } | undefined;
  const isInternal = (): Promise<boolean> => {
    if (!internal || internal.until < Date.now()) internal = { until: Date.now() + 60_000, answer: isInternalHost(base.hostname) };
    return internal.answer;
  };

  const upstreamPath = (path: string): string => (namespace ? `${namespace}/${path}` : path);

  /**
   * One request. The timeout covers the answer's headers, and for small answers their body too; a
   * streamed blob may take longer than that to arrive (`streaming`): its body only may not stall
   * for longer than the timeout between two reads.
   */
  async function send(url: string, init: Init, streaming = false): Promise<Answer> {
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(new Error(`no answer within ${options.timeoutMs / 1000} s`)), options.timeoutMs);
    timeout.unref();
    try {
      const { request: undiciRequest, dispatcher, publicOnly } = await undiciClient();
      const res = await undiciRequest(url, {
        method: init.method ?? 'GET',
        headers: init.headers ?? {},
        signal: timer.signal,
        // A public upstream may not send us to an internal address (a redirect, a realm, a lookaside).
        dispatcher: (await isInternal()) ? dispatcher : publicOnly,
        // The headers are timed above; a streamed body's reads here.
        bodyTimeout: options.timeoutMs,
      });
      if (streaming) clearTimeout(timeout);
      return {
        status: res.statusCode,
        header: (name) => {
          const value = res.headers[name];
          return Array.isArray(value) ? value[0] : value;
        },
        body: res.body,
      };
    } catch (err) {
      clearTimeout(timeout);
      // Where the upstream sent us is its doing, not an outage: 502, not 503 with the cache.
      const refused = err instanceof InternalAddressError ? err : (err as { cause?: unknown }).cause;
      if (refused instanceof InternalAddressError) throw new UpstreamError(label, `${refused.message} (from ${url})`);
      if (!timer.signal.aborted && answeredWrongly(err)) throw new UpstreamError(label, `${reason(err)} (from ${url})`);
      throw new UpstreamUnavailableError(label, timer.signal.aborted ? (timer.signal.reason as Error).message : reason(err));
    }
  }

  async function token(challenge: Record<string, string>, scope: string): Promise<{ header: string; expires: number }> {
    const realm = challenge.realm;
    if (!realm) throw new UpstreamError(label, 'Bearer challenge without a realm');
    const url = new URL(realm);
    if (challenge.service) url.searchParams.set('service', challenge.service);
    url.searchParams.set('scope', scope);
    const res = await send(url.toString(), { headers: basic ? { Authorization: basic } : {} });
    if (res.status >= 500 || res.status === 429) throw new UpstreamUnavailableError(label, `token endpoint answered ${res.status}`);
    if (!ok(res))
      throw new UpstreamError(label, `token endpoint refused ${basic ? 'the credentials' : 'anonymous access'} (${res.status})`);
    const body = (await readJson(res, 1024 * 1024, label, 'the token endpoint answer')) as {
      token?: unknown;
      access_token?: unknown;
      expires_in?: unknown;
    } | null;
    const value = body?.token ?? body?.access_token;
    if (!value) throw new UpstreamError(label, 'token endpoint sent no token');
    // Sent back in a header: visible ASCII only (RFC 6750's b64token is a subset).
    if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) throw new UpstreamError(label, 'token endpoint sent a malformed token');
    // As containers/image: 60 s when the answer does not say; renewed a little early.
    const seconds = Math.max(typeof body?.expires_in === 'number' && Number.isFinite(body.expires_in) ? body.expires_in : 60, 60);
    return { header: `Bearer ${value}`, expires: Date.now() + (seconds - 10) * 1000 };
  }

  /** A registry API request for a repository (or `/v2/`), authenticated as the upstream asks. */
  async function request(apiPath: string, scope: string, init: Init = {}, streaming = false): Promise<Answer> {
    const url = `${origin}${apiPath}`;
    const withAuth = (header: string | undefined): Init => ({
      ...init,
      headers: { ...init.headers, ...(header ? { Authorization: header } : {}) },
    });
    const known = authorization.get(scope);
    let res = await send(url, withAuth(known && known.expires > Date.now() ? known.header : undefined), streaming);
    if (res.status !== 401) return res;
    await discard(res);
    const challenge = parseChallenge(res.header('www-authenticate') ?? '');
    let auth: { header: string; expires: number };
    if (challenge.scheme === 'bearer') auth = await token(challenge.params, scope);
    else if (challenge.scheme === 'basic' && basic) auth = { header: basic, expires: Number.MAX_SAFE_INTEGER };
    else throw new UpstreamError(label, `authentication required (${challenge.scheme || 'no challenge'}); set the mirror's credentials`);
    authorization.set(scope, auth);
    res = await send(url, withAuth(auth.header), streaming);
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      throw new UpstreamError(label, `refused access to ${scope} (${res.status})`);
    }
    return res;
  }

  /** Fails on a status that is neither success nor 404; true for 404. */
  async function notFound(res: Answer, what: string): Promise<boolean> {
    if (res.status === 404) {
      await discard(res);
      return true;
    }
    if (ok(res)) return false;
    await discard(res);
    if (res.status >= 500 || res.status === 429) throw new UpstreamUnavailableError(label, `${what} answered ${res.status}`);
    throw new UpstreamError(label, `${what} answered ${res.status}`);
  }

  const scopeOf = (path: string): string => `repository:${upstreamPath(path)}:pull`;

  return {
    url: options.url,
    pathOf: upstreamPath,

    async manifest(path, reference) {
      const res = await request(`/v2/${upstreamPath(path)}/manifests/${reference}`, scopeOf(path), {
        headers: { Accept: MANIFEST_ACCEPT },
      });
      if (await notFound(res, `manifest ${path}:${reference}`)) return undefined;
      const content = await readLimited(res, MANIFEST_LIMIT, label);
      const wanted = parseDigest(reference);
      const digest = digestOf(wanted?.algorithm ?? 'sha256', content);
      // Never stored unless its bytes are what was asked for.
      if (wanted && digest !== wanted.digest) throw new UpstreamError(label, `manifest ${reference} of ${path} arrived as ${digest}`);
      const mediaType = (res.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      return { content, mediaType, digest };
    },

    async manifestDigest(path, tag) {
      const res = await request(`/v2/${upstreamPath(path)}/manifests/${tag}`, scopeOf(path), {
        method: 'HEAD',
        headers: { Accept: MANIFEST_ACCEPT },
      });
      if (await notFound(res, `manifest ${path}:${tag}`)) return undefined;
      return res.header('docker-content-digest') ?? undefined;
    },

    async blob(path, digest) {
      const res = await request(`/v2/${upstreamPath(path)}/blobs/${digest}`, scopeOf(path), {}, true);
      if (await notFound(res, `blob ${digest} of ${path}`)) return undefined;
      const length = res.header('content-length');
      return { size: length === undefined ? undefined : Number(length), body: res.body };
    },

    async blobSize(path, digest) {
      const res = await request(`/v2/${upstreamPath(path)}/blobs/${digest}`, scopeOf(path), { method: 'HEAD' });
      if (await notFound(res, `blob ${digest} of ${path}`)) return undefined;
      const length = res.header('content-length');
      return length === undefined ? undefined : Number(length);
    },

    async tags(path, { keep = () => true, max = Number.MAX_SAFE_INTEGER } = {}) {
      // Filtered page by page, a page dropped once read: a hostile upstream sending 16 MiB pages of
      // tags with endless next links ran the registry out of heap when every page was kept
      // (adversarial testing).
      const kept: string[] = [];
      let next: string | undefined = `/v2/${upstreamPath(path)}/tags/list?n=1000`;
      for (let pages = 0; next; pages += 1) {
        if (pages === MAX_TAG_PAGES) return { tags: kept, stopped: `the upstream's tag list has more than ${MAX_TAG_PAGES} pages` };
        const res = await request(next, scopeOf(path));
        if (await notFound(res, `tags of ${path}`)) return { tags: kept };
        const body = (await readJson(res, TAG_PAGE_LIMIT, label, `the tag list of ${path}`)) as { tags?: unknown } | null;
        // Only names the tag grammar allows: a mirror run stores each tag it copies, and a hostile
        // upstream's `a","b` or 4 KB name is nothing a client could have pushed here.
        for (const tag of Array.isArray(body?.tags) ? (body.tags as unknown[]) : []) {
          if (typeof tag !== 'string' || !isValidTag(tag) || !keep(tag)) continue;
          if (kept.length === max) return { tags: kept, stopped: `more than ${max} tags match` };
          kept.push(tag);
        }
        const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(res.header('link') ?? '');
        next = link ? new URL(link[1]!, origin).pathname + new URL(link[1]!, origin).search : undefined;
      }
      return { tags: kept };
    },

    supportsSignatureExtension() {
      // The header comes with a 401 as well as a 200: no credentials needed to read it.
      extension ??= send(`${origin}/v2/`, {})
        .then(async (res) => {
          await discard(res);
          return res.header('x-registry-supports-signatures') === '1';
        })
        .catch((err: unknown) => {
          extension = undefined;
          throw err;
        });
      return extension;
    },

    async getPlain(url, limit) {
      const res = await send(url, {});
      if (!ok(res)) {
        await discard(res);
        if (res.status >= 500 || res.status === 429) throw new UpstreamUnavailableError(url, `answered ${res.status}`);
        return { status: res.status };
      }
      return { status: res.status, body: await readLimited(res, limit, url) };
    },

    async getJson(apiPath, path, limit) {
      const resolved = apiPath.replace('{path}', upstreamPath(path));
      const res = await request(resolved, scopeOf(path));
      if (await notFound(res, apiPath)) return undefined;
      return readJson(res, limit, label, `the answer to ${resolved}`);
    },
  };
}
