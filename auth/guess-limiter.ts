// Bounds password guessing against the htpasswd users: per client address and user name, at most
// LIMIT refused passwords in a window; past that, every answer to that pair, the right password
// included (otherwise a 200 among the 429s would still tell a guess was right), is 429 with
// Retry-After until the window ends. Adversarial testing (stop 43) signed in after 100 wrong
// passwords for an admin in one second from one address. Counted per pair, not per address, so
// a misconfigured client behind a shared address does not lock out its neighbours; an unknown
// user name is counted as a known one is (the answers tell nothing of which names exist).
// Robot accounts are left out: their secrets are random, not guessable.

/** Refused passwords a client address may send for one user name in a window (the default of REGISTRY_AUTH_HTPASSWD_MAXFAILURES). */
export const GUESS_LIMIT = 10;
export const GUESS_WINDOW_MS = 60_000;
/** Pairs remembered at most (oldest windows forgotten first): a few MB whatever the traffic. */
const MAX_PAIRS = 10_000;

export interface GuessLimiter {
  /** Seconds the pair must wait before its credentials count again; 0 when it may go on. */
  wait(address: string, user: string, now?: number): number;
  /** Counts a refused password; true when this one reached the limit (to log once). */
  failed(address: string, user: string, now?: number): boolean;
}

/** `limit` 0: no bound (REGISTRY_AUTH_HTPASSWD_MAXFAILURES=0). */
export function createGuessLimiter(limit = GUESS_LIMIT, windowMs = GUESS_WINDOW_MS): GuessLimiter {
  if (limit === 0) return { wait: () => 0, failed: () => false };
  const windows = new Map<string, { failures: number; endsAt: number }>();
  const keyOf = (address: string, user: string): string => `${address}\u0000${user}`;
  return {
    wait(address, user, now = Date.now()) {
      if (windows.size === 0) return 0; // every request with credentials asks: no key made then
      const entry = windows.get(keyOf(address, user));
      if (!entry || entry.endsAt <= now || entry.failures < limit) return 0;
      return Math.ceil((entry.endsAt - now) / 1000);
    },
    failed(address, user, now = Date.now()) {
      const key = keyOf(address, user);
      let entry = windows.get(key);
      if (!entry || entry.endsAt <= now) {
        windows.delete(key);
        if (windows.size >= MAX_PAIRS) windows.delete(windows.keys().next().value!);
        entry = { failures: 0, endsAt: now + windowMs };
        windows.set(key, entry);
      }
      entry.failures += 1;
      return entry.failures === limit;
    },
  };
}
