// Scopes of the distribution token specification (docs/spec/auth/scope.md): what a client asks the
// token service for, and what a token grants. `repository:team/app:pull,push`; the name may hold
// colons (`repository:host:5000/app:pull`), so the type ends at the first colon and the actions
// begin after the last. A client may send several scopes, as repeated `scope` parameters (GET) or
// separated by spaces (the OAuth2 POST form); both are read.
import type { Action } from './actions.js';

/** The actions a repository token may carry. `*` stands for all three, as in distribution. */
export const TOKEN_ACTIONS = ['pull', 'push', 'delete'] as const;
export type TokenAction = (typeof TOKEN_ACTIONS)[number];

export interface ScopeRequest {
  type: string;
  name: string;
  actions: string[];
}

/** One entry of a token's `access` claim, as the spec writes it. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** A bound on what one request may ask for, so a token request cannot make the service work without end. */
export const MAX_SCOPES = 32;

const SCOPE_RE = /^([a-z0-9]+(?:\([a-z0-9]+\))?):(.+):([a-z*]*(?:,[a-z*]*)*)$/;

/**
 * The scopes in the given parameter values, each at most once per (type, name) with their actions
 * merged; anything that is not a scope is left out (it is granted nothing, as the spec allows).
 * Throws when there are more than MAX_SCOPES.
 */
export function parseScopes(untrustedValues: readonly string[]): ScopeRequest[] {
  const merged = new Map<string, ScopeRequest>();
  for (const value of untrustedValues) {
    for (const untrusted of value.split(' ')) {
      if (untrusted === '') continue;
      const match = SCOPE_RE.exec(untrusted);
      if (!match) continue;
      // `repository(plugin)`: docker's plugin class reads as a repository.
      const type = match[1]!.replace(/\(.*\)$/, '');
      const name = match[2]!;
      const actions = match[3]!.split(',').filter((a) => a !== '');
      const key = `${type}:${name}`;
      const entry = merged.get(key);
      if (entry) {
        for (const action of actions) if (!entry.actions.includes(action)) entry.actions.push(action);
      } else {
        if (merged.size >= MAX_SCOPES) throw new RangeError(`at most ${MAX_SCOPES} scopes per token request`);
        merged.set(key, { type, name, actions: [...new Set(actions)] });
      }
    }
  }
  return [...merged.values()];
}

/** The scope string of an access entry (`repository:team/app:pull,push`). */
export function formatScope(entry: AccessEntry): string {
  return `${entry.type}:${entry.name}:${entry.actions.join(',')}`;
}

/**
 * Which token action a registry action needs. Writing signatures is a push (skopeo and podman
 * store them with the token they push with); the management API's actions have no token action:
 * it takes Basic credentials.
 */
export function tokenActionFor(action: Action): TokenAction | undefined {
  switch (action) {
    case 'pull':
      return 'pull';
    case 'push':
    case 'sign':
      return 'push';
    case 'delete':
      return 'delete';
    default:
      return undefined;
  }
}

/** The scope a 401 challenge names for `action` on repository `name`: docker asks pull with push. */
export function challengeScope(action: Action, name: string): string | undefined {
  const needed = tokenActionFor(action);
  if (needed === undefined || name === '') return undefined;
  return `repository:${name}:${needed === 'push' ? 'pull,push' : needed}`;
}

/** What a verified token grants, by repository name, for checks on every request. */
export class TokenGrants {
  private readonly byName = new Map<string, ReadonlySet<string>>();

  constructor(access: readonly AccessEntry[]) {
    for (const entry of access) {
      if (entry.type !== 'repository') continue;
      const actions = new Set(entry.actions);
      if (actions.has('*')) for (const a of TOKEN_ACTIONS) actions.add(a);
      const before = this.byName.get(entry.name);
      this.byName.set(entry.name, before ? new Set([...before, ...actions]) : actions);
    }
  }

  allows(action: TokenAction, name: string): boolean {
    return this.byName.get(name)?.has(action) ?? false;
  }
}
