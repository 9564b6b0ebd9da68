-- netmedic collector, SQLite schema v7: the incident list in severity order.
-- The console and the API list incidents "most severe first" (critical, major, minor; newest
-- first within a severity). SQLite seeks a row-value cursor only on plain columns, not on an
-- indexed expression, so the rank is a VIRTUAL generated column (computed on read, nothing
-- stored in the table; only the index holds it) and every page is one index seek however deep.
-- store::severity_rank computes the same numbers.
ALTER TABLE incidents ADD COLUMN severity_rank INTEGER
    GENERATED ALWAYS AS (CASE severity WHEN 'critical' THEN 3 WHEN 'major' THEN 2 ELSE 1 END) VIRTUAL;
CREATE INDEX incidents_by_severity ON incidents (severity_rank, started_at, agent_id, incident_id);
