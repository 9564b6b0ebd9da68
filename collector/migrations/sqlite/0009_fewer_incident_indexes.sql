-- netmedic collector, SQLite schema v9: one index fewer written per incident upsert.
-- incidents_by_start (started_at) duplicated the leading column of incidents_newest
-- (started_at DESC, agent_id DESC, incident_id DESC), which serves the same started_at ranges
-- (scanned in either direction); every new incident paid for both.
DROP INDEX IF EXISTS incidents_by_start;
