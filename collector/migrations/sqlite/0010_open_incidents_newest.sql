-- netmedic collector, SQLite schema v10: a resolved incident writes no status index entry.
-- incidents_by_status (status, started_at DESC) took an entry for every incident, although
-- only the open ones (a small share of the history) are worth an index: a page of resolved
-- incidents walks incidents_newest, where nearly every row is resolved. The open ones get a
-- partial index in the console's order (newest first, ties by agent and incident id).
DROP INDEX IF EXISTS incidents_by_status;
CREATE INDEX incidents_open_newest ON incidents (started_at DESC, agent_id DESC, incident_id DESC)
    WHERE status = 'open';
