-- Simple signatures (OpenPGP signed messages) per manifest, in the order they were stored: the
-- lookaside serves them as signature-1, signature-2, ... They go with their manifest.
CREATE TABLE signatures (
  id bigserial PRIMARY KEY,
  repository_id bigint NOT NULL,
  manifest_digest text NOT NULL,
  name text NOT NULL,
  content bytea NOT NULL,
  content_digest text NOT NULL,
  signer_key_id text NOT NULL,
  signer_fingerprint text,
  identity text NOT NULL,
  signed_at timestamptz,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (repository_id, manifest_digest, content_digest),
  UNIQUE (repository_id, manifest_digest, name),
  FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);
CREATE INDEX signatures_by_manifest ON signatures (repository_id, manifest_digest, id);

-- Public keys a project trusts: OpenPGP (binary, as `gpg --export` writes) or cosign (PEM).
CREATE TABLE project_keys (
  id bigserial PRIMARY KEY,
  project text NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('openpgp', 'cosign')),
  fingerprint text NOT NULL,
  key_ids text[] NOT NULL,
  user_ids text[] NOT NULL DEFAULT '{}',
  material bytea NOT NULL,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project, fingerprint)
);
