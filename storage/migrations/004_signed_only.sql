-- Per-project "only signed pulls" gate.
ALTER TABLE projects ADD COLUMN signed_only boolean NOT NULL DEFAULT false;
