// Robot accounts: credentials for CI that belong to one project, with a role in it, an expiry, and
// a secret shown once. They are named `robot$<project>+<name>` (Harbor's form): `$` and `+` cannot
// appear in a project or robot name, and user names starting with `robot$` are never looked up in
// the htpasswd file, so a robot cannot be mistaken for a person or the other way round.
//
// The secret is 256 random bits, so a single sha256 of it is as good a verifier as bcrypt would
// be, at a microsecond instead of tens of milliseconds per check: robots never pay bcrypt. The
// digest is compared in constant time. Lookups are remembered for the cache TTL and dropped on
// every replica at once when the project changes (the change bus), so a revoked robot stops
// working everywhere immediately.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ChangeBus } from '../storage/change-bus.js';
import { DependencyUnavailableError } from '../storage/errors.js';
import { isValidProjectName, isValidRobotName } from '../storage/oci-grammar.js';
import type { RobotRecord, RobotRole, RobotStore } from '../storage/robot-store.js';
import type { Principal } from './authorize.js';

export const ROBOT_PREFIX = 'robot$';
export const ROBOT_ROLES: readonly RobotRole[] = ['guest', 'developer', 'maintainer'];

export function robotAccount(project: string, name: string): string {
  return `${ROBOT_PREFIX}${project}+${name}`;
}

/**
 * `robot$team+ci` → team, ci; undefined for anything else, a project or robot name outside the
 * grammar included: no robot can have such a name, and the store is never asked about one
 * (PostgreSQL text cannot hold the NUL a client can put in Basic credentials).
 */
export function parseRobotAccount(user: string): { project: string; name: string } | undefined {
  if (!user.startsWith(ROBOT_PREFIX)) return undefined;
  const rest = user.slice(ROBOT_PREFIX.length);
  const plus = rest.lastIndexOf('+');
  if (plus <= 0) return undefined;
  const project = rest.slice(0, plus);
  const name = rest.slice(plus + 1);
  if (!isValidProjectName(project) || !isValidRobotName(name)) return undefined;
  return { project, name };
}

export interface Robot {
  account: string;
  id: number;
  project: string;
  name: string;
  role: RobotRole;
  expiresAt?: Date;
  createdBy?: string;
  createdAt: Date;
  lastUsedAt?: Date;
}

export interface Robots {
  /** Undefined when the project is missing or the name taken. The secret is returned only here. */
  create(
    project: string,
    name: string,
    role: RobotRole,
    expiresAt: Date | undefined,
    actor?: string,
  ): Promise<{ robot: Robot; secret: string } | undefined>;
  list(project: string): Promise<Robot[]>;
  revoke(project: string, name: string, actor?: string): Promise<boolean>;
  /**
   * The robot's principal when `secret` is its secret and it has not expired; undefined otherwise.
   * Answered at once when the robot was looked up a moment ago, unless `fresh`: then it is read
   * from the store whatever the cache holds (a console sign-in, whose time must not tell whether
   * the name was in use a moment ago).
   */
  verify(account: string, secret: string, fresh?: boolean): Principal | undefined | Promise<Principal | undefined>;
  /** The principal of robot `id` named `account`, if it still exists and has not expired (for tokens). */
  current(account: string, id: number): Principal | undefined | Promise<Principal | undefined>;
}

export interface RobotsOptions {
  store: RobotStore;
  bus?: ChangeBus;
  /** How long a lookup is remembered (dropped at once by changes on any replica). */
  cacheTtlMs: number;
  /** A use is recorded at most this often per robot and process. */
  touchIntervalMs?: number;
  onTouchError?: (err: unknown) => void;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();
/** Compared against when there is no robot of the name (no secret's sha256 is all zeros). */
const NO_SECRET = Buffer.alloc(32);
/** Looked up for an account that is no robot's name: no project or robot is named ''. */
const NO_ROBOT = { project: '', name: '' };

interface Entry {
  record: RobotRecord | undefined;
  principal: Principal | undefined;
  expires: number;
}

function toRobot(record: RobotRecord): Robot {
  const { secretSha256: _secret, ...rest } = record;
  return { account: robotAccount(record.project, record.name), ...rest };
}

export function createRobots(options: RobotsOptions): Robots {
  const { store, bus, cacheTtlMs } = options;
  const touchIntervalMs = options.touchIntervalMs ?? 60_000;
  const cache = new Map<string, Entry>();
  const touched = new Map<number, number>();
  // A lookup that raced a change must not store what it read before the change.
  let version = 0;
  /** Forgets one project's robots, or every project's for 'all'. */
  const forgetProject = (project: string): void => {
    version += 1;
    if (project === 'all') return cache.clear();
    for (const key of cache.keys()) if (parseRobotAccount(key)?.project === project) cache.delete(key);
  };
  bus?.subscribe((change) => {
    if (change === 'all') forgetProject('all');
    else if (change.project !== undefined) forgetProject(change.project);
  });
  const changed = (project: string): void => {
    if (bus) bus.publish({ project });
    else forgetProject(project);
  };

  async function load(account: string): Promise<Entry> {
    const hit = cache.get(account);
    // A name that cannot be a robot's is looked up all the same (as a name that finds nothing):
    // one read and one comparison for every refused account, as for an unknown htpasswd user.
    const { project, name } = parseRobotAccount(account) ?? NO_ROBOT;
    const before = version;
    let record: RobotRecord | undefined;
    try {
      record = await store.find(project, name);
    } catch (err) {
      // The database does not answer: what was known lately serves the requests that go on.
      if (hit && err instanceof DependencyUnavailableError) return hit;
      throw err;
    }
    const principal: Principal | undefined = record
      ? Object.freeze({ user: account, robot: Object.freeze({ id: record.id, project: record.project, role: record.role }) })
      : undefined;
    const entry = { record, principal, expires: Date.now() + cacheTtlMs };
    if (cache.size > 10_000) cache.clear();
    if (version === before && cacheTtlMs > 0) cache.set(account, entry);
    return entry;
  }

  function lookup<T>(account: string, answer: (entry: Entry) => T, fresh = false): T | Promise<T> {
    const hit = fresh ? undefined : cache.get(account);
    if (hit && hit.expires > Date.now()) return answer(hit);
    return load(account).then(answer);
  }

  /** Whether the record is usable now; records the use (throttled, in the background). */
  function usable(record: RobotRecord | undefined): record is RobotRecord {
    if (!record) return false;
    const now = Date.now();
    if (record.expiresAt && record.expiresAt.getTime() <= now) return false;
    const last = touched.get(record.id) ?? 0;
    if (now - last >= touchIntervalMs) {
      touched.set(record.id, now);
      if (touched.size > 10_000) touched.clear();
      store.touch(record.id, new Date(now)).catch((err: unknown) => options.onTouchError?.(err));
    }
    return true;
  }

  return {
    async create(project, name, role, expiresAt, actor) {
      const secret = randomBytes(32).toString('base64url');
      const record = await store.create({ project, name, role, secretSha256: sha256(secret), ...(expiresAt ? { expiresAt } : {}) }, actor);
      if (!record) return undefined;
      changed(project);
      return { robot: toRobot(record), secret };
    },
    async list(project) {
      return (await store.list(project)).map(toRobot);
    },
    async revoke(project, name, actor) {
      const removed = await store.remove(project, name, actor);
      changed(project);
      return removed;
    },
    verify(account, secret, fresh) {
      const candidate = sha256(secret);
      // The same work for a name that has no robot (compared with a digest nothing hashes to) as
      // for one that has: one lookup and one comparison either way, so the time does not tell
      // which robots exist.
      const judge = ({ record, principal }: Entry): Principal | undefined => {
        const same = timingSafeEqual(candidate, record?.secretSha256 ?? NO_SECRET);
        return record && same && usable(record) ? principal : undefined;
      };
      const answer = lookup(account, judge, fresh);
      if (answer instanceof Promise || answer !== undefined) return answer;
      // Only a check that passes is answered from the cache. A refused one reads the store, as a
      // name no one used lately (or no robot has) does: otherwise a wrong secret for a robot a
      // pipeline used a moment ago would be refused faster, telling which robot names are in use.
      return load(account).then(judge);
    },
    current(account, id) {
      return lookup(account, ({ record, principal }) => (record?.id === id && usable(record) ? principal : undefined));
    },
  };
}
