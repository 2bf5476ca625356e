-- Console sign-ins: every replica reads the same rows, so a session works whichever replica a
-- browser reaches, and signing out ends it everywhere. Only a sha256 of the session id is kept,
-- so reading this table gives no one a session.
CREATE TABLE console_sessions (
  id_hash text PRIMARY KEY,
  username text NOT NULL,
  csrf_token text NOT NULL,
  -- A digest of the user's htpasswd entry at sign-in: a changed password or a removed user ends
  -- the session.
  credential_tag text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
