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
import { LRUCache } from 'lru-cache';

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
}

export interface HtpasswdOptions {
  path: string;
  /** How long a verified credential is remembered. */
  cacheTtlMs?: number;
  /** How often, at most, the file's modification time is checked. */
  recheckMs?: number;
  onReload?: (users: number) => void;
  onError?: (err: unknown) => void;
  /** Told of each bcrypt check (for a metric). */
  onCheck?: () => void;
}

// A valid bcrypt hash of a random string: unknown users pay the same bcrypt cost as known ones,
// so response times do not reveal who exists.
const DUMMY_HASH = bcrypt.hashSync(randomBytes(16).toString('hex'), 10);

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
    users.set(line.slice(0, colon), hash);
  }
  return users;
}

export function createHtpasswd(options: HtpasswdOptions): Htpasswd {
  const recheckMs = options.recheckMs ?? 1000;
  const cacheKey = randomBytes(32).toString('hex');
  const verified = new LRUCache<string, true>({ max: 10_000, ttl: options.cacheTtlMs ?? 10 * 60_000 });
  /** bcrypt checks under way, by credentials key. */
  const checking = new Map<string, Promise<boolean>>();
  let users = new Map<string, string>();
  let loadedMtime = -1;
  let checkedAt = 0;
  let loading: Promise<void> | undefined;
  /** Counts reloads, so a bcrypt check against a table since replaced is not remembered. */
  let generation = 0;

  async function load(): Promise<void> {
    try {
      const info = await stat(options.path);
      if (info.mtimeMs === loadedMtime && info.size >= 0) return;
      users = parseHtpasswd(await readFile(options.path, 'utf8'));
      loadedMtime = info.mtimeMs;
      forget();
      options.onReload?.(users.size);
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
      const matches = await bcrypt.compare(password, (hash ?? DUMMY_HASH).replace(/^\$2y\$/, '$2a$'));
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
  };
}
