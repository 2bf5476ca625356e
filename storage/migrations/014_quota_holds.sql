-- What a quota check let through, counted against the project's quota by every replica until its
-- blob or manifest is linked (storage/quota-store.ts). `replica` is the holder's heartbeat id
-- (010_replicas.sql): the holds of a replica no longer seen count no more.
CREATE TABLE quota_holds (
  id text PRIMARY KEY,
  project text NOT NULL,
  repository text NOT NULL,
  digest text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('blob', 'manifest')),
  bytes bigint NOT NULL CHECK (bytes >= 0),
  replica text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quota_holds_project ON quota_holds (project);
