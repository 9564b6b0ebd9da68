-- netmedic collector, PostgreSQL schema v6: the incident list in severity order.
-- The console and the API list incidents "most severe first" (critical, major, minor; newest
-- first within a severity). An expression index: PostgreSQL seeks a row-value cursor on it.
-- The expression is written exactly as the list query writes it (postgres.rs
-- SEVERITY_RANK_SQL); store::severity_rank computes the same numbers.
CREATE INDEX incidents_by_severity ON incidents (
    (CASE severity WHEN 'critical' THEN 3 WHEN 'major' THEN 2 ELSE 1 END),
    started_at, agent_id, incident_id
);
