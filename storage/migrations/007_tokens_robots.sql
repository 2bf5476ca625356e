-- The key the built-in token service signs bearer tokens with (auth/tokens.ts). One row, written
-- by whichever replica starts first, so every replica signs and accepts the same tokens.
CREATE TABLE token_signing_keys (
  id integer PRIMARY KEY CHECK (id = 1),
  kid text NOT NULL,
  algorithm text NOT NULL,
  private_jwk jsonb NOT NULL,
  public_jwk jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Robot accounts: project-scoped credentials for CI, named robot$<project>+<name>. Only a sha256 of
-- the (random, 256-bit) secret is kept. Deleting the project deletes its robots.
CREATE TABLE robots (
  id bigserial PRIMARY KEY,
  project text NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
  name text COLLATE "C" NOT NULL,
  role text NOT NULL CHECK (role IN ('guest', 'developer', 'maintainer')),
  secret_sha256 bytea NOT NULL,
  expires_at timestamptz,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  UNIQUE (project, name)
);
