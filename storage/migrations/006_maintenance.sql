-- When scheduled maintenance (garbage collection) last started: replicas share one schedule.
CREATE TABLE maintenance_runs (
  name text PRIMARY KEY,
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  report jsonb
);
