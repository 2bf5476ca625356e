-- Tag names only of the distribution spec's tag grammar (storage/oci-grammar.ts), which every way a
-- tag is written checks: tag lists are joined into JSON text by the database without escaping
-- (storage/postgres-metadata-store.ts, listJson), so a name with a quote, a backslash or a control
-- character must never be stored, whatever path wrote it.
--
-- Before this, a mirror run could store whatever names its upstream listed. Such a tag could not
-- be pulled (every request naming it is refused by the grammar) and only showed in tag lists: it
-- goes, its manifest stays (untagged, as after a tag is deleted), so the constraint can be added.
DELETE FROM tags WHERE name !~ '^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$';
ALTER TABLE tags ADD CONSTRAINT tags_name_grammar CHECK (name ~ '^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$');
