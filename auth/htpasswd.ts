// Apache htpasswd files with bcrypt entries ($2y$, $2a$, $2b$, as `htpasswd -B` writes them),
// checked with bcryptjs. The file is re-read when it changes, without a restart.
//
// bcrypt costs tens of milliseconds of CPU per check (on purpose), and clients send Basic
// credentials with every request, so verified credentials are remembered for a while: keyed by a
// sha256 of user and password under a per-process random secret (never the password itself),
// dropped when the file changes.
import { hash as digestOf, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { createLru } from '../storage/lru.js';

export interface Htpasswd {
  /**
   * True when the user exists and the password matches. Credentials verified a moment ago are
   * answered at once, without a promise: that is every request after a client's first (see
   * `verify` below for why it matters).
   */
  verify(user: string, password: string): boolean | Promise<boolean>;
  /**
   * Changes whenever the users in the file change; undefined while a look at the file is due or
   * under way (`verify` waits for it). An answer remembered under one version holds while it lasts.
   */
  version(): number | undefined;
  /**
   * A short digest of the user's entry as the file holds it now, undefined for a user it does not
   * hold: tokens carry it, so a password changed or a user removed ends the tokens issued before.
   * The entry's salt is not in it, so it tells nothing about the password. Like `verify`, it waits
   * for a look at the file that is due or under way (a token's first request after a change is
   * checked against the new file, as Basic credentials are), and otherwise answers at once.
   */
  fingerprint(user: string): string | undefined | Promise<string | undefined>;
  /**
   * A digest of the user's current entry (undefined: no such user), after a look at the file if
   * one is due: a console session records it, and ends when the password changes or the user goes.
   */
  entryTag(user: string): Promise<string | undefined>;
}

export interface HtpasswdOptions {
  path: string;
  /** How long a verified credential is remembered. */
  cacheTtlMs?: number;
  /** How often, at most, the file's modification time is checked. */
  recheckMs?: number;
  /** After each load: the users read, and the bcrypt cost unknown users are checked at. */
  onReload?: (users: number, dummyCost: number) => void;
  onError?: (err: unknown) => void;
  /** Told of each bcrypt check (for a metric). */
  onCheck?: () => void;
}

/** bcrypt's own default, for a file without entries (where every login fails alike anyway). */
const DEFAULT_COST = 10;

/** The cost of a bcrypt hash (`$2y$05$...` → 5). */
function costOf(hash: string): number {
  return Number(hash.slice(4, 6));
}

/**
 * The cost an unknown user is checked at: the one most of the file's entries use (the higher of
 * two equally common). A wrong password for a known user costs that user's bcrypt cost, so an
 * unknown user must cost the same, or response times tell who exists: with a fixed cost of 10,
 * an unknown user took 63-107 ms where a user of `htpasswd -B` (cost 5) took 5-7 ms.
 */
export function dummyCostFor(users: ReadonlyMap<string, string>): number {
  const counts = new Map<number, number>();
  for (const hash of users.values()) counts.set(costOf(hash), (counts.get(costOf(hash)) ?? 0) + 1);
  let best = DEFAULT_COST;
  let bestCount = 0;
  for (const [cost, count] of counts) {
    if (count > bestCount || (count === bestCount && cost > best)) [best, bestCount] = [cost, count];
  }
  return best;
}

export function parseHtpasswd(text: string): Map<string, string> {
  const users = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const hash = line.slice(colon + 1);
    // Only bcrypt: MD5-crypt, SHA1 and plain text entries are refused, as the Go registry does.
    if (!/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(hash)) continue;
    // bcrypt's costs run from 4 to 31; bcryptjs cannot check any other.
    if (costOf(hash) < 4 || costOf(hash) > 31) continue;
    users.set(line.slice(0, colon), hash);
  }
  return users;
}

export function createHtpasswd(options: HtpasswdOptions): Htpasswd {
  const recheckMs = options.recheckMs ?? 1000;
  const cacheKey = randomBytes(32).toString('hex');
  const verified = createLru<string, true>(10_000, { ttlMs: options.cacheTtlMs ?? 10 * 60_000 });
  /** bcrypt checks under way, by credentials key. */
  const checking = new Map<string, Promise<boolean>>();
  let users = new Map<string, string>();
  /** fingerprint() of each user asked about, for the table in hand (a token check on every request). */
  const fingerprints = new Map<string, string | undefined>();
  let loadedMtime = -1;
  let checkedAt = 0;
  let loading: Promise<void> | undefined;
  /** Counts reloads, so a bcrypt check against a table since replaced is not remembered. */
  let generation = 0;
  /**
   * A valid bcrypt hash of a random string at the file's cost (dummyCostFor), made again when a
   * reload changes that cost; until the first load, none (a check waits for the load).
   */
  let dummy: string | undefined;

  async function rebuildDummy(cost: number): Promise<void> {
    if (dummy !== undefined && costOf(dummy) === cost) return;
    dummy = await bcrypt.hash(randomBytes(16).toString('hex'), cost);
  }

  async function load(): Promise<void> {
    try {
      const info = await stat(options.path);
      if (info.mtimeMs === loadedMtime && info.size >= 0) return;
      const next = parseHtpasswd(await readFile(options.path, 'utf8'));
      // Before the new table is used: checks wait for this load, so none runs at the old cost.
      await rebuildDummy(dummyCostFor(next));
      users = next;
      loadedMtime = info.mtimeMs;
      forget();
      options.onReload?.(users.size, costOf(dummy!));
    } catch (err) {
      // A missing or unreadable file locks everyone out rather than keeping stale users.
      users = new Map();
      loadedMtime = -1;
      forget();
      options.onError?.(err);
    }
  }

  /** The table changed: nothing checked against the old one counts any more. */
  function forget(): void {
    generation++;
    fingerprints.clear();
    verified.clear();
    checking.clear();
  }

  /** Starts a look at the file when one is due; undefined when the table in hand is current. */
  function recheck(): Promise<void> | undefined {
    const now = Date.now();
    if (now - checkedAt >= recheckMs) {
      checkedAt = now;
      loading ??= load().finally(() => (loading = undefined));
    }
    return loading;
  }

  function fingerprintOf(user: string): string | undefined {
    if (fingerprints.has(user)) return fingerprints.get(user);
    const hash = users.get(user);
    const fingerprint = hash === undefined ? undefined : digestOf('sha256', hash, 'base64url').slice(0, 22);
    if (fingerprints.size > 10_000) fingerprints.clear();
    fingerprints.set(user, fingerprint);
    return fingerprint;
  }

  async function check(key: string, user: string, password: string, reloading: Promise<void> | undefined): Promise<boolean> {
    if (reloading) {
      await reloading;
      if (verified.has(key)) return true;
    }
    // A client opening many connections at once (docker pulls layers over several) sends the
    // same new credentials on each: they share one bcrypt check instead of running one each
    // (32 at once cost 2 s of the event loop's time before this).
    const shared = checking.get(key);
    if (shared) return shared;
    const hash = users.get(user);
    const against = generation;
    options.onCheck?.();
    const started = (async () => {
      // bcryptjs reads $2y$ as $2a$ (the same algorithm under PHP's name).
      // An unknown user before any load succeeded (the file is missing): the default cost.
      dummy ??= await bcrypt.hash(randomBytes(16).toString('hex'), DEFAULT_COST);
      const matches = await bcrypt.compare(password, (hash ?? dummy).replace(/^\$2y\$/, '$2a$'));
      // An unknown user is checked against the dummy hash for the timing, never accepted.
      const accepted = matches && hash !== undefined;
      // A password changed or a user removed while bcrypt ran: the answer stands for the requests
      // that asked before the change, but is not remembered past it.
      if (accepted && generation === against) verified.set(key, true);
      return accepted;
    })().finally(() => {
      if (checking.get(key) === started) checking.delete(key);
    });
    checking.set(key, started);
    return started;
  }

  return {
    verify(user, password) {
      // The cache never holds a password: its key is a digest of the credentials under a random
      // per-process secret. A one-shot sha256 over secret and credentials (the user's length first,
      // so no two pairs read alike) costs a fifth of an HMAC, on every authenticated request;
      // extending the input, HMAC's concern, gains nothing in a lookup.
      const key = digestOf('sha256', `${cacheKey}${user.length}:${user}:${password}`, 'base64');
      const reloading = recheck();
      // Remembered credentials with no look at the file under way: answered at once. Clients send
      // their credentials on every request, and the promise chain this skips cost more than the
      // rest of authentication together (bench/, "authenticated manifest GET": 10 µs a GET).
      if (!reloading && verified.has(key)) return true;
      return check(key, user, password, reloading);
    },
    version() {
      return recheck() ? undefined : generation;
    },
    fingerprint(user) {
      const reloading = recheck();
      return reloading ? reloading.then(() => fingerprintOf(user)) : fingerprintOf(user);
    },
    async entryTag(user) {
      await recheck();
      const hash = users.get(user);
      // Unkeyed, so every replica computes the same tag; it is a digest of a salted bcrypt hash.
      return hash === undefined ? undefined : digestOf('sha256', hash, 'base64');
    },
  };
}
