// Configuration: defaults < YAML file < environment, validated once at start-up. Names follow the
// Go reference registry (`registry:2`): a YAML key path `http.tls.certificate` is also the variable
// REGISTRY_HTTP_TLS_CERTIFICATE, so its users can switch by changing the image name. Nothing else
// reads process.env.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as z from 'zod';
import { bucketNameProblem, parseEndpoint, regionProblem, rootPrefix } from '../storage/s3-endpoint.js';
import { parseProxyEntry } from './client-address.js';
import { configIssueMessage } from './config-messages.js';
import { catalogue, checkFileKeys, overlayEnvironment, type ConfigNote, type SourceReport } from './config-sources.js';

const boolish = z.union(
  [
    z.boolean(),
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off', 'TRUE', 'FALSE', 'True', 'False'])
      .transform((v) => ['true', '1', 'yes', 'on'].includes(v.toLowerCase())),
  ],
  { error: 'expected true or false (or 1/0, yes/no, on/off)' },
);
const seconds = z.coerce.number().nonnegative();
/** Seconds, or a Go duration as the Go registry writes them: "90s", "1m30s", "500ms". */
const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const parsed = parseDuration(value);
  if (parsed === undefined) ctx.addIssue({ code: 'custom', message: 'expected seconds or a duration such as 30s, 1m30s, 500ms' });
  return parsed ?? 0;
});
const addrSchema = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):\d{1,5}$/, 'expected [host]:port');
const optionalString = z.string().min(1).optional();
/** HTTPS takes a certificate and its key: either alone is the same one problem, named in words. */
const tlsFile = z
  .string({
    error: (issue) =>
      issue.input === undefined
        ? 'missing: HTTPS needs both REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY (PEM files: the certificate and its private key); set both, or neither for plain HTTP'
        : undefined,
  })
  .min(1);

const MiB = 1024 * 1024;

/** True when `parse` accepts the value (the storage module owns the rules). */
function parses(parse: (value: string) => unknown): (value: string) => boolean {
  return (value) => {
    try {
      parse(value);
      return true;
    } catch {
      return false;
    }
  };
}

// The Go registry's S3 driver settings (storage.s3.*), plus `createbucket`.
const s3Schema = z
  .object({
    bucket: z
      .string({ error: 'required when REGISTRY_STORAGE=s3: the bucket that holds the blobs' })
      .min(1, 'required when REGISTRY_STORAGE=s3: the bucket that holds the blobs')
      .superRefine((name, ctx) => {
        const problem = name.length > 0 ? bucketNameProblem(name) : undefined;
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      }),
    /** Without it, AWS S3 itself; `http(s)://host[:port]`, or `host[:port]` with `secure` choosing. */
    regionendpoint: z.string().min(1).refine(parses(parseEndpoint), 'expected http(s)://host[:port] or host[:port]').optional(),
    region: z.string().min(1).default('us-east-1'),
    accesskey: optionalString,
    secretkey: optionalString,
    /** A key prefix inside the bucket, so registries can share one. */
    rootdirectory: z
      .string()
      .refine(parses(rootPrefix), 'expected a key prefix such as /registry: segments of A-Z a-z 0-9 . _ -, none empty, . or ..')
      .default(''),
    secure: boolish.default(true),
    /** Default: path style for a custom endpoint, virtual-hosted for AWS. */
    forcepathstyle: boolish.optional(),
    createbucket: boolish.default(false),
    /** Bytes per multipart part (so per upload in memory); S3's minimum is 5 MiB. */
    chunksize: z.coerce
      .number()
      .int()
      .min(5 * MiB, 'must be at least 5 MiB (5242880)')
      .max(5 * 1024 * MiB)
      .default(10 * MiB),
    /** A request to S3 on which no byte moves for this long fails (503). */
    idletimeout: duration.refine((s) => s > 0, 'must be more than 0').default(30),
  })
  .superRefine(
    (s3, ctx) => {
      if (typeof s3.region !== 'string' || (s3.regionendpoint !== undefined && typeof s3.regionendpoint !== 'string')) return;
      const problem = regionProblem(s3.region, s3.regionendpoint, typeof s3.secure === 'boolean' ? s3.secure : true);
      if (problem) ctx.addIssue({ code: 'custom', path: ['region'], message: problem });
    },
    // Checked even when other S3 settings are wrong, so every problem is listed at once.
    { when: () => true },
  )
  .refine((s3) => (s3.accesskey === undefined) === (s3.secretkey === undefined), {
    message: 'set both REGISTRY_STORAGE_S3_ACCESSKEY and REGISTRY_STORAGE_S3_SECRETKEY, or neither',
    path: ['accesskey'],
    // Checked even when other S3 settings are wrong, so every problem is listed at once.
    when: () => true,
  });

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
      addr: addrSchema.default(':5000'),
      /** Public host names clients use, comma-separated `host[:port]`. */
      host: optionalString,
      tls: z.object({ certificate: tlsFile, key: tlsFile }).optional(),
      /** On SIGTERM: how long in-flight requests may go on before connections are cut (Go name). */
      draintimeout: duration.default(25),
      /** A connection with no bytes moving for this long is closed: a stalled upload is dropped. */
      idletimeout: duration.refine((s) => s > 0, 'must be more than 0').default(60),
      /**
       * An upload or download that moved no byte for this long gives its slot to another request of
       * its caller when the caller is at its bound (server/caller-slots.ts); 0: only the idle timeout.
       */
      stalltimeout: duration.default(10),
      /**
       * Reverse proxies whose X-Forwarded-For is believed (server/client-address.ts): comma-separated
       * IP addresses or CIDR ranges. Without any, the connection's peer is the client.
       */
      trustedproxies: z
        .union([z.string(), z.array(z.string())])
        .default([])
        .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean))
        .refine((entries) => entries.every((entry) => parseProxyEntry(entry) !== undefined), {
          message: 'expected comma-separated IP addresses or CIDR ranges, such as 10.0.0.5,172.31.250.0/24',
        }),
      /** As the Go registry: metrics on their own listener when `addr` is set, else on the main port. */
      debug: z
        .object({
          addr: addrSchema.optional(),
          prometheus: z
            .object({
              enabled: boolish.default(true),
              path: z
                .string()
                .regex(/^\/[A-Za-z0-9._/-]*$/, 'an absolute URL path such as /metrics')
                .default('/metrics'),
            })
            .prefault({}),
        })
        .prefault({}),
    })
    .prefault({}),
  storage: z
    .object({
      filesystem: z
        .object({
          rootdirectory: z.string().min(1).default('./data/storage'),
          /** Signet's own: large writes go past the page cache with O_DIRECT (storage/file-sink.ts). */
          directio: boolish.default(true),
        })
        .prefault({}),
      /** Present (REGISTRY_STORAGE=s3, or any REGISTRY_STORAGE_S3_* setting): S3 wins over filesystem. */
      s3: s3Schema.optional(),
      delete: z.object({ enabled: boolish.default(true) }).prefault({}),
      /** Go name: on S3, a whole-blob GET is answered with a 307 to a presigned URL unless disabled. */
      redirect: z.object({ disable: boolish.default(false) }).prefault({}),
      /** Go name: read-only mode for maintenance; every write answers 405 UNSUPPORTED. */
      maintenance: z
        .object({
          readonly: z.object({ enabled: boolish.default(false) }).prefault({}),
          /** Go names: upload sessions idle longer than `age` are removed by garbage collection. */
          uploadpurging: z.object({ age: duration.default(168 * 3600) }).prefault({}),
        })
        .prefault({}),
    })
    .prefault({}),
  database: z
    .object({
      /** A PostgreSQL connection string; without it the embedded PGlite is used. */
      url: z
        .string()
        .regex(/^(postgres(ql)?:\/\/|socket:)/, 'expected a PostgreSQL URL such as postgres://user:password@host:5432/database')
        .optional(),
      /** Where the embedded PGlite keeps its files. */
      datadirectory: z.string().min(1).default('./data/database'),
      pool: z.object({ max: z.coerce.number().int().positive().default(10) }).prefault({}),
      /** GitLab's registry name: how long a statement waits for a connection before it fails (503). */
      connecttimeout: duration.refine((s) => s > 0, 'must be more than 0').default(10),
      /** How long a statement waits for the server's answer before it fails (503). */
      querytimeout: duration.refine((s) => s > 0, 'must be more than 0').default(30),
      /**
       * Statements prepared once per connection (false: parsed on every call, for a pooler that
       * hands each transaction another server connection, as pgbouncer's transaction mode does
       * unless its max_prepared_statements is set).
       */
      preparedstatements: boolish.default(true),
    })
    .prefault({}),
  auth: z
    .object({
      htpasswd: z
        .object({
          realm: z.string().min(1).default('Signet Registry'),
          path: z.string({ error: 'the htpasswd file path is required' }).min(1),
          /** Refused passwords per client address and user a minute before 429 (auth/guess-limiter.ts); 0: no bound. */
          maxfailures: z.coerce.number().int().nonnegative().default(10),
        })
        .optional(),
      /**
       * Token mode (REGISTRY_AUTH=token, or any REGISTRY_AUTH_TOKEN_* setting): the built-in token
       * service (auth/tokens.ts) issues bearer tokens and 401s carry a Bearer challenge; users still
       * come from the htpasswd file, and Basic credentials keep working.
       */
      token: z
        .object({
          /** The token service's URL in challenges; default: `<scheme>://<Host of the request>/token`. */
          realm: z
            .string()
            .refine(
              (v) => /^https?:\/\/[^/\s"]+(\/[^\s"]*)?$/.test(v),
              'expected an absolute http(s) URL such as https://registry.example.com/token',
            )
            .optional(),
          /** The service name (tokens' audience); default: the first REGISTRY_HTTP_HOST, else "signet". */
          service: z
            .string()
            .regex(/^[^\s"\\]+$/, 'expected a name without blanks or quotes, such as registry.example.com')
            .optional(),
          /** Tokens' issuer (`iss`). */
          issuer: z
            .string()
            .regex(/^[^\s"\\]+$/, 'expected a name without blanks or quotes')
            .default('signet'),
          /** Access token lifetime (Signet's own; Harbor's token expiration): at least 60 s, as the spec asks. */
          expiration: duration.refine((s) => s >= 60 && s <= 86_400, 'must be between 60s and 24h').default(300),
          /** Refresh (docker's identity) token lifetime: `docker login` lasts this long. */
          refreshexpiration: duration.refine((s) => s >= 60, 'must be at least 60s').default(30 * 86_400),
        })
        .optional(),
      /** Registry-wide administrators: comma-separated user names. */
      admins: z
        .union([z.string(), z.array(z.string())])
        .default([])
        .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter(Boolean)),
    })
    .refine((auth) => !auth.token || auth.htpasswd, {
      message: 'token mode takes its users from the htpasswd file: set REGISTRY_AUTH_HTPASSWD_PATH too',
      path: ['token'],
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
        .object({
          path: z
            .string()
            .regex(/^\/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$/, 'an absolute URL path such as /sigstore')
            .default('/sigstore'),
        })
        .prefault({}),
    })
    .prefault({}),
  gc: z
    .object({
      /** Run garbage collection inside the server every this many seconds (0: never; `signet gc` runs it on demand). */
      interval: duration.default(0),
      /** Blobs and manifests created or linked more recently than this are never collected (as Harbor: 2h). */
      grace: duration.default(2 * 3600),
      /** Also remove untagged manifests that no index lists and that refer to nothing present. */
      deleteuntagged: boolish.default(false),
    })
    .prefault({}),
  uploads: z
    .object({
      /** Upload requests one user (or, anonymous, one client address) may stream at once; 0: no limit. */
      maxconcurrent: z.coerce.number().int().nonnegative().default(32),
    })
    .prefault({}),
  downloads: z
    .object({
      /**
       * Blob GETs one user (or, anonymous, one client address) may be sent at once; 0: no limit.
       * docker fetches 3 layers of an image at once (max-concurrent-downloads), containers/image
       * up to 6: 64 leaves room for many pulls side by side from one machine or NAT address.
       */
      maxconcurrent: z.coerce.number().int().nonnegative().default(64),
    })
    .prefault({}),
  proxy: z
    .object({
      /**
       * Mirror projects: a tag fetched from the upstream is served this long before the upstream
       * is asked again (the Go registry's proxy asks on every pull; its `ttl` is a cache expiry).
       */
      tagttl: duration.default(300),
      /** How long a request to an upstream may wait for its answer. */
      timeout: duration.refine((s) => s > 0, 'must be more than 0').default(30),
      /**
       * The most bytes a mirror stores of a blob fetched by digest alone (no descriptor gives its
       * size) in a project without a quota: an upstream that streams without end must not fill
       * the disk (adversarial testing).
       */
      maxblobsize: z.coerce
        .number()
        .int()
        .min(MiB, 'must be at least 1 MiB (1048576)')
        .default(8 * 1024 * MiB),
    })
    .prefault({}),
  cache: z
    .object({
      /** Seconds a replica may serve a tag or manifest from memory; 0 turns the cache off. */
      ttl: seconds.default(5),
      /** Bytes the tag, manifest and blob-link cache may hold (storage/cached-metadata-store.ts). */
      maxsize: z.coerce
        .number()
        .int()
        .min(MiB, 'must be at least 1 MiB (1048576)')
        .default(64 * MiB),
    })
    .prefault({}),
  /** Signet's own: the web console served at `/` to browsers (console/, server/handlers/console.ts). */
  console: z
    .object({
      enabled: boolish.default(true),
      /** A console build to serve instead of the one `npm run build` made (dist/console). */
      directory: optionalString,
      /** How long a console sign-in lasts (seconds or a duration such as 8h). */
      sessionttl: duration.refine((s) => s >= 60, 'must be at least 60 seconds').default(12 * 3600),
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

const SETTINGS = catalogue(configSchema);

/** A configuration, and what start-up should say about the names it was given under. */
export interface ConfigReading {
  config: Config;
  notes: ConfigNote[];
}

/**
 * The YAML parser, loaded only when there is a file to read: most deployments set variables, and
 * it cost 40 ms of every start (issue 22).
 */
function loadYaml(): typeof import('yaml') {
  return createRequire(import.meta.url)('yaml') as typeof import('yaml');
}

export function readConfig(options: LoadConfigOptions): ConfigReading {
  const report: SourceReport = { problems: [], notes: [] };
  let tree: Tree = {};
  const file = options.file ?? options.env.REGISTRY_CONFIGURATION_PATH;
  if (file) {
    try {
      const parsed: unknown = loadYaml().parse(readFileSync(file, 'utf8'));
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== 'object' || Array.isArray(parsed)) report.problems.push(`${file}: expected a YAML mapping`);
        else tree = parsed as Tree;
      }
    } catch (err) {
      report.problems.push(`${file}: ${(err as Error).message}`);
    }
    checkFileKeys(tree, file, SETTINGS, report);
  }
  overlayEnvironment(tree, options.env, SETTINGS, report);
  const result = configSchema.safeParse(tree, { error: configIssueMessage });
  if (!result.success) {
    for (const issue of result.error.issues) {
      const name = issue.path.length ? `REGISTRY_${issue.path.join('_').toUpperCase()}` : 'configuration';
      report.problems.push(`${name}: ${issue.message}`);
    }
  }
  if (report.problems.length > 0 || !result.success) throw new ConfigError(report.problems);
  return { config: result.data, notes: report.notes };
}

export function loadConfig(options: LoadConfigOptions): Config {
  return readConfig(options).config;
}

/**
 * The registry's public host names (`host[:port]`), from REGISTRY_HTTP_HOST: comma-separated, each
 * a host or a URL as the Go registry takes it. Empty: the Host header of each request counts. Kept
 * as written: signed references are compared with them exactly, as containers/image compares them.
 */
export function publicHosts(config: Config): string[] {
  return (config.http.host ?? '')
    .split(',')
    .map((h) =>
      h
        .trim()
        .replace(/^[a-z]+:\/\//i, '')
        .replace(/\/.*$/, ''),
    )
    .filter(Boolean);
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

const DURATION_UNITS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** Seconds from a number, a numeric string (seconds) or a Go duration string; undefined if invalid. */
export function parseDuration(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, , unit] of text.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(amount) * DURATION_UNITS[unit!]!;
  return total;
}

/** Where blobs go, for the start-up log: never a credential. */
export function describeStorage(config: Config): Record<string, string> {
  const s3 = config.storage.s3;
  if (!s3) return { driver: 'filesystem', rootdirectory: config.storage.filesystem.rootdirectory };
  return {
    driver: 's3',
    endpoint: s3.regionendpoint ?? `AWS ${s3.region}`,
    bucket: s3.bucket,
    ...(s3.rootdirectory ? { rootdirectory: s3.rootdirectory } : {}),
  };
}
