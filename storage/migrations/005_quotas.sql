-- Per-project storage quotas (as Harbor's): NULL is no limit. Usage is computed on demand from
-- the blobs and manifests linked in the project's repositories (storage/project-store.ts).
ALTER TABLE projects ADD COLUMN quota_bytes bigint CHECK (quota_bytes IS NULL OR quota_bytes >= 0);
