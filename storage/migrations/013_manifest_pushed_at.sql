-- When a manifest was last pushed (or fetched by a mirror), beside when it was first: garbage
-- collection's grace window reads this one. A client re-pushing an old platform manifest and then
-- its index (docker buildx, skopeo copy --all) lost the platform manifest to a collection that
-- ran in between, since its age counted from the first push (adversarial testing, stop 43).
-- A column of its own rather than created_at moved: replicas still running the previous version
-- during an upgrade keep reading created_at.
ALTER TABLE manifests ADD COLUMN pushed_at timestamptz NOT NULL DEFAULT now();
UPDATE manifests SET pushed_at = created_at;
