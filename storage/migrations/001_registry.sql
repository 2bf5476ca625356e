-- The registry's metadata. Blob bytes live in the blob store; manifests are small (4 MiB at most)
-- and live here, so a manifest and its tag are written in one transaction.

-- Names compare byte-wise ("C") so tag and catalog listings are in lexical order.
CREATE TABLE repositories (
  id bigserial PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Content known to the blob store, whatever repositories link it.
CREATE TABLE blobs (
  digest text PRIMARY KEY,
  size bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- A blob belongs to a repository only once pushed or mounted there.
CREATE TABLE repository_blobs (
  repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  digest text NOT NULL REFERENCES blobs (digest),
  linked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs (digest);

CREATE TABLE manifests (
  repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
  digest text NOT NULL,
  media_type text NOT NULL,
  content bytea NOT NULL,
  size bigint NOT NULL,
  artifact_type text,
  subject_digest text,
  annotations jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests (repository_id, subject_digest) WHERE subject_digest IS NOT NULL;

-- What a manifest points at: blobs (config, layers) or child manifests (index entries).
CREATE TABLE manifest_references (
  repository_id bigint NOT NULL,
  manifest_digest text NOT NULL,
  child_digest text NOT NULL,
  child_kind text NOT NULL CHECK (child_kind IN ('blob', 'manifest')),
  PRIMARY KEY (repository_id, manifest_digest, child_digest),
  FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX manifest_references_child ON manifest_references (child_digest);

CREATE TABLE tags (
  repository_id bigint NOT NULL,
  name text COLLATE "C" NOT NULL,
  manifest_digest text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (repository_id, name),
  FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);

-- Upload sessions live here, not in one server's memory, so they survive restarts and can move
-- between replicas.
CREATE TABLE uploads (
  id uuid PRIMARY KEY,
  repository text NOT NULL,
  size bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE upload_chunks (
  upload_id uuid NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
  start_offset bigint NOT NULL,
  size bigint NOT NULL,
  storage_key text NOT NULL,
  PRIMARY KEY (upload_id, start_offset)
);
