// Console sign-in sessions, in the database so that every replica accepts them and signing out
// ends a session everywhere. The browser holds a random id; the table holds its sha256 only.
import { createHash, randomBytes } from 'node:crypto';
import type { Db } from './db.js';

export interface Session {
  user: string;
  /** Sent back by the console in X-CSRF-Token with every write. */
  csrfToken: string;
  /** The user's credentials entry at sign-in (Authenticator.credentialTag). */
  credentialTag: string;
  expiresAt: Date;
}

export interface SessionStore {
  /** A new session for `user`: the id for the cookie, and the session. Expired rows are purged. */
  create(user: string, credentialTag: string, ttlMs: number): Promise<{ id: string; session: Session }>;
  /** The live session with this id, if any. */
  find(id: string): Promise<Session | undefined>;
  remove(id: string): Promise<void>;
}

interface Row {
  username: string;
  csrf_token: string;
  credential_tag: string;
  expires_at: Date;
}

const hashOf = (id: string): string => createHash('sha256').update(id).digest('hex');
const token = (): string => randomBytes(32).toString('base64url');

export function createSessionStore(db: Pick<Db, 'query'>): SessionStore {
  return {
    async create(user, credentialTag, ttlMs) {
      await db.query('DELETE FROM console_sessions WHERE expires_at < now()');
      const id = token();
      const session: Session = { user, csrfToken: token(), credentialTag, expiresAt: new Date(Date.now() + ttlMs) };
      await db.query(
        'INSERT INTO console_sessions (id_hash, username, csrf_token, credential_tag, expires_at) VALUES ($1, $2, $3, $4, $5)',
        [hashOf(id), user, session.csrfToken, credentialTag, session.expiresAt],
      );
      return { id, session };
    },

    async find(id) {
      const rows = await db.query<Row>(
        'SELECT username, csrf_token, credential_tag, expires_at FROM console_sessions WHERE id_hash = $1 AND expires_at > now()',
        [hashOf(id)],
      );
      const row = rows[0];
      return row
        ? { user: row.username, csrfToken: row.csrf_token, credentialTag: row.credential_tag, expiresAt: new Date(row.expires_at) }
        : undefined;
    },

    async remove(id) {
      await db.query('DELETE FROM console_sessions WHERE id_hash = $1', [hashOf(id)]);
    },
  };
}
