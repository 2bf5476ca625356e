// Mirror settings as the management API takes and shows them (POST and PATCH /api/v1/projects).
// The password goes in and never comes out: the answer says only whether credentials are set.
import * as z from 'zod';
import type { MirrorSettings } from '../storage/project-store.js';
import { defaultSignedPrefix, signedPrefixProblem } from '../sigstore/remap-identity.js';
import { OciError } from './errors.js';

const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const MAX_RULES = 100;
/** A year: longer intervals are a mistake (and must stay a PostgreSQL integer). */
const MAX_INTERVAL_SECONDS = 366 * 24 * 3600;

const RULE = z.strictObject({ repository: z.string().min(1).max(255), tags: z.string().min(1).max(255) });
const SYNC = z.strictObject({
  rules: z.array(RULE).max(MAX_RULES),
  intervalSeconds: z.int().nonnegative().max(MAX_INTERVAL_SECONDS),
});

/** Every field optional: a PATCH changes what it names; a create needs `upstream`. */
export const MIRROR_BODY = z.strictObject({
  upstream: z.string().max(2048).optional(),
  /** null removes the credentials. */
  username: z.union([z.string().min(1).max(255), z.null()]).optional(),
  password: z.string().max(4096).optional(),
  lookaside: z.union([z.string().max(2048), z.null()]).optional(),
  signedPrefix: z.union([z.string().max(512), z.null()]).optional(),
  useExtension: z.boolean().optional(),
  /** null: REGISTRY_PROXY_TAGTTL. */
  tagTtlSeconds: z.union([z.int().nonnegative().max(MAX_INTERVAL_SECONDS), z.null()]).optional(),
  sync: SYNC.optional(),
});
export type MirrorBody = z.infer<typeof MIRROR_BODY>;

function invalid(field: string, message: string): OciError {
  return new OciError('REQUEST_INVALID', `mirror ${field}: ${message}`, { field: `mirror.${field}` });
}

/** An http(s) URL without credentials, query or fragment, its trailing slashes dropped. */
function baseUrl(field: string, untrusted: string, pathRule?: (segment: string) => boolean): string {
  let url: URL;
  try {
    url = new URL(untrusted);
  } catch {
    throw invalid(field, `${untrusted} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(field, 'expected an http:// or https:// URL');
  if (url.username || url.password) throw invalid(field, 'give credentials as username and password, not in the URL');
  if (url.search || url.hash) throw invalid(field, 'a base URL takes no query or fragment');
  const path = url.pathname.replace(/\/+$/, '');
  if (
    pathRule &&
    path
      .split('/')
      .slice(1)
      .some((s) => !pathRule(s))
  ) {
    throw invalid(field, `the namespace ${path} is not a repository path (lower-case letters, digits, separators)`);
  }
  return `${url.origin}${path}`;
}

/** Text stored as given (credentials, tag globs): PostgreSQL text cannot hold NUL. */
function checkText(field: string, untrusted: string): void {
  if (untrusted.includes('\u0000')) throw invalid(field, 'may not contain NUL');
}

function checkRule(rule: { repository: string; tags: string }): void {
  if (!rule.repository.split('/').every((s) => PATH_COMPONENT.test(s))) {
    throw invalid('sync.rules', `${rule.repository} is not a repository path`);
  }
  checkText('sync.rules.tags', rule.tags);
}

/** The settings a create or PATCH leads to, over `current` (a PATCH) or nothing (a create). */
export function mirrorSettings(body: MirrorBody, current?: MirrorSettings): MirrorSettings {
  const upstreamText = body.upstream ?? current?.upstream;
  if (upstreamText === undefined) throw invalid('upstream', 'required: the URL of the registry to mirror');
  const upstream = baseUrl('upstream', upstreamText, (s) => PATH_COMPONENT.test(s));
  let credentials = current?.credentials;
  if (body.username === null) credentials = undefined;
  else if (body.username !== undefined) {
    if (body.password === undefined) throw invalid('password', 'required with a username');
    credentials = { username: body.username, password: body.password };
  } else if (body.password !== undefined) {
    if (!credentials) throw invalid('username', 'required with a password');
    credentials = { ...credentials, password: body.password };
  }
  if (credentials) {
    checkText('username', credentials.username);
    checkText('password', credentials.password);
  }
  const lookaside =
    body.lookaside === null ? undefined : body.lookaside !== undefined ? baseUrl('lookaside', body.lookaside) : current?.lookaside;
  const signedPrefix = body.signedPrefix === null ? undefined : (body.signedPrefix ?? current?.signedPrefix);
  if (signedPrefix !== undefined) {
    const problem = signedPrefixProblem(signedPrefix);
    if (problem) throw invalid('signedPrefix', problem);
  }
  const sync = body.sync ?? current?.sync ?? { rules: [], intervalSeconds: 0 };
  const tagTtlSeconds = body.tagTtlSeconds === null ? undefined : (body.tagTtlSeconds ?? current?.tagTtlSeconds);
  sync.rules.forEach(checkRule);
  return {
    upstream,
    ...(credentials ? { credentials } : {}),
    ...(lookaside !== undefined ? { lookaside } : {}),
    ...(signedPrefix !== undefined ? { signedPrefix } : {}),
    useExtension: body.useExtension ?? current?.useExtension ?? true,
    ...(tagTtlSeconds !== undefined ? { tagTtlSeconds } : {}),
    sync,
  };
}

/** What the API shows: never the credentials themselves. */
export function mirrorJson(mirror: MirrorSettings): Record<string, unknown> {
  return {
    upstream: mirror.upstream,
    credentials: mirror.credentials !== undefined,
    lookaside: mirror.lookaside ?? null,
    signedPrefix: mirror.signedPrefix ?? defaultSignedPrefix(mirror.upstream),
    useExtension: mirror.useExtension,
    tagTtlSeconds: mirror.tagTtlSeconds ?? null,
    sync: mirror.sync,
  };
}
