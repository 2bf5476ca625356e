-- Change notices sent by the database itself, in the transaction that makes the change: every
-- statement that writes a repository's tags, manifests or blob links notifies the replicas'
-- change bus (storage/change-bus.ts, channel signet_changes) with the repository's name, and
-- PostgreSQL delivers a notice if and only if its transaction commits, in commit order. The
-- registry's own notice after each write is sent too, but it is lost if the writing replica dies
-- or its database connection fails between the commit and the notice; this one cannot be.
--
-- Only on a PostgreSQL server (the ".postgres" in this file's name; storage/migrate.ts): with the
-- embedded PGlite one process is the only writer and hears its own writes directly.
--
-- What relies on it: a replica's metadata cache keeps its entries beyond REGISTRY_CACHE_TTL only
-- while its listening connection has lately heard its own ping, which proves that every notice
-- committed before that ping was heard (storage/cached-metadata-store.ts).
CREATE FUNCTION signet_notify_repositories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('signet_changes', json_build_object('repository', r.name)::text)
    FROM (SELECT DISTINCT repository_id FROM changed_rows) AS c
    JOIN repositories AS r ON r.id = c.repository_id;
  RETURN NULL;
END
$$;

-- A repository's removal deletes its rows by cascade after its own row is gone, so the name
-- comes from the removed row.
CREATE FUNCTION signet_notify_removed_repositories() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('signet_changes', json_build_object('repository', name)::text) FROM changed_rows;
  RETURN NULL;
END
$$;

-- A transition table belongs to one event of one trigger, hence a trigger per table and event:
-- tags_insert, tags_update, tags_delete, manifests_insert, ... repository_blobs_delete.
DO $$
DECLARE
  t text;
  e text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tags', 'manifests', 'repository_blobs'] LOOP
    FOREACH e IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
      EXECUTE format(
        'CREATE TRIGGER %I AFTER %s ON %I REFERENCING %s TABLE AS changed_rows '
        'FOR EACH STATEMENT EXECUTE FUNCTION signet_notify_repositories()',
        t || '_' || lower(e), e, t, CASE e WHEN 'DELETE' THEN 'OLD' ELSE 'NEW' END);
    END LOOP;
  END LOOP;
END
$$;

CREATE TRIGGER repositories_delete AFTER DELETE ON repositories REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION signet_notify_removed_repositories();
