// Who may do what to which repository. Handlers ask `can(principal, action, repository)` before
// they look anything up, so an unauthorized caller learns nothing about existence.

export type Action = 'pull' | 'push' | 'delete';

export interface Principal {
  /** Undefined for an anonymous caller. */
  user?: string;
}

export const ANONYMOUS: Principal = Object.freeze({});

export interface Authorizer {
  can(principal: Principal, action: Action, repository: string): Promise<boolean>;
}

/** Every caller may do everything: the registry core without authentication configured. */
export function createOpenAuthorizer(): Authorizer {
  return { can: async () => true };
}
