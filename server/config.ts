// Configuration: defaults < YAML file < environment, validated once at start-up. Names follow the
// Go reference registry (`registry:2`): a YAML key path `http.tls.certificate` is also the variable
// REGISTRY_HTTP_TLS_CERTIFICATE, so its users can switch by changing the image name. Nothing else
// reads process.env.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';

const boolish = z.union([
  z.boolean(),
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off', 'TRUE', 'FALSE', 'True', 'False'])
    .transform((v) => ['true', '1', 'yes', 'on'].includes(v.toLowerCase())),
]);
const seconds = z.coerce.number().nonnegative();
const optionalString = z.string().min(1).optional();

export const configSchema = z.object({
  version: z.union([z.string(), z.number()]).optional(),
  log: z
    .object({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      accesslog: z.object({ disabled: boolish.default(false) }).prefault({}),
    })
    .prefault({}),
  http: z
    .object({
      /** `[host]:port`, as the Go registry writes it (":5000" listens on every interface). */
      addr: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'expected [host]:port').default(':5000'),
      /** Public host names clients use, comma-separated `host[:port]`. */
      host: optionalString,
      tls: z.object({ certificate: z.string().min(1), key: z.string().min(1) }).optional(),
    })
    .prefault({}),
  storage: z
    .object({
      filesystem: z.object({ rootdirectory: z.string().min(1).default('./data/storage') }).prefault({}),
      delete: z.object({ enabled: boolish.default(true) }).prefault({}),
    })
    .prefault({}),
  database: z
    .object({
      /** A PostgreSQL connection string; without it the embedded PGlite is used. */
      url: optionalString,
      /** Where the embedded PGlite keeps its files. */
      datadirectory: z.string().min(1).default('./data/database'),
      pool: z.object({ max: z.coerce.number().int().positive().default(10) }).prefault({}),
    })
    .prefault({}),
  auth: z
    .object({
      htpasswd: z
        .object({
          realm: z.string().min(1).default('Signet Registry'),
          path: z.string({ error: 'the htpasswd file path is required' }).min(1),
        })
        .optional(),
      /** Registry-wide administrators: comma-separated user names. */
      admins: z
        .union([z.string(), z.array(z.string())])
        .default([])
        .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean)),
    })
    .prefault({}),
  projects: z
    .object({
      /** Pushing into a missing project creates it, the pusher becoming its admin. */
      autocreate: boolish.default(false),
    })
    .prefault({}),
  signatures: z
    .object({
      /** The signature API extension (and its X-Registry-Supports-Signatures header). */
      extension: boolish.default(true),
      lookaside: z
        .object({ path: z.string().regex(/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/, 'an absolute URL path such as /sigstore').default('/sigstore') })
        .prefault({}),
    })
    .prefault({}),
  cache: z
    .object({
      /** Seconds a replica may serve a tag or manifest from memory; 0 turns the cache off. */
      ttl: seconds.default(5),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadConfigOptions {
  env: Record<string, string | undefined>;
  /** A YAML file; REGISTRY_CONFIGURATION_PATH names one too, as in the Go registry. */
  file?: string;
}

type Tree = Record<string, unknown>;

// Sections whose variable holds the name of the chosen kind: REGISTRY_AUTH=htpasswd, REGISTRY_STORAGE=s3.
const SELECTORS = new Set(['auth', 'storage']);

export function loadConfig(options: LoadConfigOptions): Config {
  const problems: string[] = [];
  let tree: Tree = {};
  const file = options.file ?? options.env.REGISTRY_CONFIGURATION_PATH;
  if (file) {
    try {
      const parsed: unknown = YAML.parse(readFileSync(file, 'utf8'));
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== 'object' || Array.isArray(parsed)) problems.push(`${file}: expected a YAML mapping`);
        else tree = parsed as Tree;
      }
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  overlayEnvironment(tree, options.env);
  const result = configSchema.safeParse(tree);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = issue.path.length ? `REGISTRY_${issue.path.join('_').toUpperCase()}` : 'configuration';
      problems.push(`${name}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return result.data;
}

function overlayEnvironment(tree: Tree, env: Record<string, string | undefined>): void {
  const names = Object.keys(env)
    .filter((n) => n.startsWith('REGISTRY_') && n !== 'REGISTRY_CONFIGURATION_PATH')
    .sort((a, b) => a.length - b.length);
  for (const name of names) {
    const value = env[name];
    if (value === undefined) continue;
    const path = name.slice('REGISTRY_'.length).toLowerCase().split('_').filter(Boolean);
    if (path.length === 1 && SELECTORS.has(path[0]!)) {
      const section = (tree[path[0]!] ??= {}) as Tree;
      if (typeof section === 'object') section[value.toLowerCase()] ??= {};
      continue;
    }
    let node = tree;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null) node[key] = {};
      node = node[key] as Tree;
    }
    node[path[path.length - 1]!] = value;
  }
}

export interface ListenAddress {
  host?: string;
  port: number;
}

export function parseAddr(addr: string): ListenAddress {
  const colon = addr.lastIndexOf(':');
  const host = addr.slice(0, colon).replace(/^\[|\]$/g, '');
  return { ...(host ? { host } : {}), port: Number(addr.slice(colon + 1)) };
}
