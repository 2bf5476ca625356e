// Projects with their members and roles, in PostgreSQL (or PGlite). Every change is written to the
// audit log in the same transaction, with who made it.
import type { ChangeBus } from './change-bus.js';
import { audit } from './audit.js';
import type { Db, Queryable } from './db.js';
import { DependencyUnavailableError } from './errors.js';
import { readUsage, type ProjectUsage } from './quota-store.js';

export const ROLES = ['guest', 'developer', 'maintainer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What the scheduled mirroring copies: tags of one upstream repository matching a glob. */
export interface MirrorSyncRule {
  /** The repository's path below the project (upstream path below the upstream's namespace). */
  repository: string;
  /** A glob over tag names: `*` any run of characters, `?` one. */
  tags: string;
}

/** A mirror project's upstream (issue 19). */
export interface MirrorSettings {
  /** `http(s)://host[:port][/namespace]`: `<project>/<path>` here is `<namespace>/<path>` there. */
  upstream: string;
  /** For the upstream's Basic or token authentication; never returned by the API, never logged. */
  credentials?: { username: string; password: string };
  /** The upstream's lookaside base URL (`<base>/<path>@sha256=<hex>/signature-<N>`). */
  lookaside?: string;
  /** What upstream signatures name instead of this project (default: the upstream's host[/namespace]). */
  signedPrefix?: string;
  /** Read the upstream's signature API extension when its `/v2/` advertises one. */
  useExtension: boolean;
  /** Seconds a tag is served before the upstream is asked again (default REGISTRY_PROXY_TAGTTL). */
  tagTtlSeconds?: number;
  /** Scheduled mirroring: these rules every `intervalSeconds` (0: never). */
  sync: { rules: MirrorSyncRule[]; intervalSeconds: number };
}

export interface Project {
  name: string;
  public: boolean;
  /** Manifests are served only when a trusted signature matches (sigstore/pull-gate.ts). */
  signedOnly: boolean;
  /** Storage quota in bytes (null: none), as Harbor's per-project quota. */
  quotaBytes: number | null;
  createdBy?: string;
  createdAt: Date;
  members: Map<string, Role>;
  /** Set when the project mirrors an upstream registry. */
  mirror?: MirrorSettings;
}

export interface ProjectChanges {
  public?: boolean;
  signedOnly?: boolean;
  /** null removes the quota. */
  quotaBytes?: number | null;
  /** The whole mirror configuration (null: no longer a mirror). */
  mirror?: MirrorSettings | null;
}

export interface ProjectStore {
  find(name: string): Promise<Project | undefined>;
  list(): Promise<Project[]>;
  /** False when a project of that name exists. `admin` becomes its first admin member. */
  create(name: string, options: { public: boolean; actor?: string; admin?: string; mirror?: MirrorSettings }): Promise<boolean>;
  update(name: string, changes: ProjectChanges, actor?: string): Promise<boolean>;
  remove(name: string, actor?: string): Promise<boolean>;
  setMember(name: string, user: string, role: Role, actor?: string): Promise<boolean>;
  removeMember(name: string, user: string, actor?: string): Promise<boolean>;
  /** What the project's repositories (`name` and `name/...`) hold; `digest`: is it among them. */
  /** With `repository`, `manifest` says whether that repository holds a manifest of `digest`. */
  usage(name: string, digest?: string, repository?: string): Promise<ProjectUsage>;
}

interface ProjectRow {
  name: string;
  public: boolean;
  signed_only: boolean;
  quota_bytes: number | null;
  created_by: string | null;
  created_at: Date;
  members: { username: string; role: Role }[] | null;
  upstream_url: string | null;
  username: string | null;
  password: string | null;
  lookaside_url: string | null;
  signed_prefix: string | null;
  use_extension: boolean | null;
  tag_ttl: number | null;
  sync_rules: MirrorSyncRule[] | null;
  sync_interval: number | null;
}

const SELECT_PROJECTS = `
  SELECT p.name, p.public, p.signed_only, p.quota_bytes, p.created_by, p.created_at,
         (SELECT json_agg(json_build_object('username', m.username, 'role', m.role) ORDER BY m.username)
            FROM project_members m WHERE m.project = p.name) AS members,
         pm.upstream_url, pm.username, pm.password, pm.lookaside_url, pm.signed_prefix, pm.use_extension, pm.tag_ttl,
         pm.sync_rules, pm.sync_interval
  FROM projects p LEFT JOIN project_mirrors pm ON pm.project = p.name`;

function toMirror(row: ProjectRow): MirrorSettings | undefined {
  if (row.upstream_url === null) return undefined;
  return {
    upstream: row.upstream_url,
    ...(row.username !== null && row.password !== null ? { credentials: { username: row.username, password: row.password } } : {}),
    ...(row.lookaside_url !== null ? { lookaside: row.lookaside_url } : {}),
    ...(row.signed_prefix !== null ? { signedPrefix: row.signed_prefix } : {}),
    useExtension: row.use_extension ?? true,
    ...(row.tag_ttl !== null ? { tagTtlSeconds: row.tag_ttl } : {}),
    sync: { rules: row.sync_rules ?? [], intervalSeconds: row.sync_interval ?? 0 },
  };
}

/** The mirror settings as the audit log keeps them: whether there are credentials, never the password. */
export function redactedMirror(mirror: MirrorSettings | null | undefined): object | null | undefined {
  if (!mirror) return mirror;
  // As the API shows them (server/mirror-body.ts): whether there are credentials, not whose; the
  // audit log is read by every member, guests included.
  const { credentials, ...rest } = mirror;
  return { ...rest, credentials: credentials !== undefined && credentials !== null };
}

async function saveMirror(tx: Queryable, name: string, mirror: MirrorSettings | null): Promise<void> {
  if (mirror === null) {
    await tx.query('DELETE FROM project_mirrors WHERE project = $1', [name]);
    return;
  }
  await tx.query(
    `INSERT INTO project_mirrors (project, upstream_url, username, password, lookaside_url, signed_prefix, use_extension, sync_rules, sync_interval, tag_ttl)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (project) DO UPDATE SET upstream_url = EXCLUDED.upstream_url, username = EXCLUDED.username,
       password = EXCLUDED.password, lookaside_url = EXCLUDED.lookaside_url, signed_prefix = EXCLUDED.signed_prefix,
       use_extension = EXCLUDED.use_extension, tag_ttl = EXCLUDED.tag_ttl, sync_rules = EXCLUDED.sync_rules, sync_interval = EXCLUDED.sync_interval,
       updated_at = now()`,
    [
      name,
      mirror.upstream,
      mirror.credentials?.username ?? null,
      mirror.credentials?.password ?? null,
      mirror.lookaside ?? null,
      mirror.signedPrefix ?? null,
      mirror.useExtension,
      JSON.stringify(mirror.sync.rules),
      mirror.sync.intervalSeconds,
      mirror.tagTtlSeconds ?? null,
    ],
  );
}

function toProject(row: ProjectRow): Project {
  return {
    name: row.name,
    public: row.public,
    signedOnly: row.signed_only,
    quotaBytes: row.quota_bytes,
    ...(row.created_by ? { createdBy: row.created_by } : {}),
    createdAt: row.created_at,
    members: new Map((row.members ?? []).map((m) => [m.username, m.role])),
    ...(row.upstream_url !== null ? { mirror: toMirror(row)! } : {}),
  };
}

export function createPostgresProjectStore(db: Db): ProjectStore {
  return {
    async find(name) {
      const rows = await db.query<ProjectRow>(`${SELECT_PROJECTS} WHERE p.name = $1`, [name]);
      return rows[0] && toProject(rows[0]);
    },
    async list() {
      return (await db.query<ProjectRow>(`${SELECT_PROJECTS} ORDER BY p.name`)).map(toProject);
    },
    create(name, options) {
      return db.transaction(async (tx) => {
        const inserted = await tx.query(
          `INSERT INTO projects (name, public, created_by) VALUES ($1, $2, $3)
           ON CONFLICT (name) DO NOTHING RETURNING name`,
          [name, options.public, options.actor ?? null],
        );
        if (inserted.length === 0) return false;
        if (options.admin) {
          await tx.query(`INSERT INTO project_members (project, username, role) VALUES ($1, $2, 'admin')`, [name, options.admin]);
        }
        if (options.mirror) await saveMirror(tx, name, options.mirror);
        await audit(tx, {
          actor: options.actor,
          action: 'project.create',
          project: name,
          detail: {
            public: options.public,
            admin: options.admin ?? null,
            ...(options.mirror ? { mirror: redactedMirror(options.mirror) } : {}),
          },
        });
        return true;
      });
    },
    update(name, changes, actor) {
      return db.transaction(async (tx) => {
        const rows = await tx.query(
          `UPDATE projects SET public = COALESCE($2, public), signed_only = COALESCE($3, signed_only),
             quota_bytes = CASE WHEN $4::boolean THEN $5::bigint ELSE quota_bytes END
           WHERE name = $1 RETURNING name`,
          [name, changes.public ?? null, changes.signedOnly ?? null, changes.quotaBytes !== undefined, changes.quotaBytes ?? null],
        );
        if (rows.length === 0) return false;
        if (changes.mirror !== undefined) await saveMirror(tx, name, changes.mirror);
        const detail = changes.mirror === undefined ? changes : { ...changes, mirror: redactedMirror(changes.mirror) };
        await audit(tx, { actor, action: 'project.update', project: name, detail });
        return true;
      });
    },
    remove(name, actor) {
      return db.transaction(async (tx) => {
        const rows = await tx.query('DELETE FROM projects WHERE name = $1 RETURNING name', [name]);
        if (rows.length === 0) return false;
        await audit(tx, { actor, action: 'project.delete', project: name, detail: {} });
        return true;
      });
    },
    setMember(name, user, role, actor) {
      return db.transaction(async (tx) => {
        const exists = await tx.query('SELECT 1 FROM projects WHERE name = $1', [name]);
        if (exists.length === 0) return false;
        await tx.query(
          `INSERT INTO project_members (project, username, role) VALUES ($1, $2, $3)
           ON CONFLICT (project, username) DO UPDATE SET role = EXCLUDED.role, updated_at = now()`,
          [name, user, role],
        );
        await audit(tx, { actor, action: 'member.set', project: name, detail: { user, role } });
        return true;
      });
    },
    removeMember(name, user, actor) {
      return db.transaction(async (tx) => {
        const rows = await tx.query('DELETE FROM project_members WHERE project = $1 AND username = $2 RETURNING username', [name, user]);
        if (rows.length === 0) return false;
        await audit(tx, { actor, action: 'member.remove', project: name, detail: { user } });
        return true;
      });
    },
    async usage(name, digest, repository) {
      const { usedBytes, linked, manifest } = await readUsage(db, name, digest, repository);
      return { usedBytes, linked, manifest };
    },
  };
}

/**
 * Remembers project look-ups for `ttlMs` (the authorizer reads one per request); changes made
 * through this store drop the entry at once. While the database does not answer, an expired entry
 * is used as it was.
 */
export function createCachedProjectStore(inner: ProjectStore, ttlMs: number, bus?: ChangeBus): ProjectStore {
  const cache = new Map<string, { project: Project | undefined; expires: number }>();
  // A load that raced a change must not store what it read before the change.
  let version = 0;
  /** Forgets one project, or every project for 'all'. */
  const forget = (name: string): void => {
    version += 1;
    if (name === 'all') cache.clear();
    else cache.delete(name);
  };
  bus?.subscribe((change) => {
    if (change === 'all') forget('all');
    else if (change.project !== undefined) forget(change.project);
  });
  const drop = <T>(name: string, result: T): T => {
    if (bus) bus.publish({ project: name });
    else forget(name);
    return result;
  };
  return {
    async find(name) {
      const hit = ttlMs > 0 ? cache.get(name) : undefined;
      if (hit && hit.expires > Date.now()) return hit.project;
      const before = version;
      let project: Project | undefined;
      try {
        project = await inner.find(name);
      } catch (err) {
        // The database does not answer: what was known lately serves the pulls that go on.
        if (hit && err instanceof DependencyUnavailableError) return hit.project;
        throw err;
      }
      if (cache.size > 10_000) cache.clear();
      if (version === before && ttlMs > 0) cache.set(name, { project, expires: Date.now() + ttlMs });
      return project;
    },
    list: () => inner.list(),
    create: async (name, options) => drop(name, await inner.create(name, options)),
    update: async (name, changes, actor) => drop(name, await inner.update(name, changes, actor)),
    remove: async (name, actor) => drop(name, await inner.remove(name, actor)),
    setMember: async (name, user, role, actor) => drop(name, await inner.setMember(name, user, role, actor)),
    removeMember: async (name, user, actor) => drop(name, await inner.removeMember(name, user, actor)),
    usage: (name, digest, repository) => inner.usage(name, digest, repository),
  };
}
