-- Replicas that served lately: each writes its row when it starts and every 30 seconds, so the
-- console's status page can list the replicas seen on this database.
CREATE TABLE replicas (
  id text PRIMARY KEY,
  host text NOT NULL,
  version text NOT NULL,
  started_at timestamptz NOT NULL,
  seen_at timestamptz NOT NULL
);
