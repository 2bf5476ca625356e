-- Projects: the first path component of a repository (`library/busybox` → `library`), as in Harbor.
CREATE TABLE projects (
  name text COLLATE "C" PRIMARY KEY,
  public boolean NOT NULL DEFAULT false,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE project_members (
  project text NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
  username text NOT NULL,
  role text NOT NULL CHECK (role IN ('guest', 'developer', 'maintainer', 'admin')),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project, username)
);

-- Who changed what, and when: project settings, members, and (later) trust settings.
CREATE TABLE audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text,
  action text NOT NULL,
  project text,
  detail jsonb
);
CREATE INDEX audit_log_project ON audit_log (project, at);
