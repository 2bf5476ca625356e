-- Mirror projects (issue 19): a project that is a pull-through cache of an upstream registry, with
-- where to read the upstream's signatures and what the scheduled mirroring copies. The password
-- is kept for the server's requests to the upstream and is never returned by the API or logged.
CREATE TABLE project_mirrors (
  project text COLLATE "C" PRIMARY KEY REFERENCES projects (name) ON DELETE CASCADE,
  upstream_url text NOT NULL,
  username text,
  password text,
  lookaside_url text,
  signed_prefix text,
  use_extension boolean NOT NULL DEFAULT true,
  tag_ttl integer CHECK (tag_ttl IS NULL OR tag_ttl >= 0),
  sync_rules jsonb NOT NULL DEFAULT '[]',
  sync_interval integer NOT NULL DEFAULT 0 CHECK (sync_interval >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
