-- Tag names only of the distribution spec's tag grammar (storage/oci-grammar.ts), which every way a
-- tag is written already checks: tag lists are joined into JSON text by the database without
-- escaping (storage/postgres-metadata-store.ts, listJson), so a name with a quote, a backslash or
-- a control character must never be stored, whatever path wrote it.
ALTER TABLE tags ADD CONSTRAINT tags_name_grammar CHECK (name ~ '^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$');
