-- netmedic collector, PostgreSQL schema v4: results of on-demand diagnostics. The agent POSTs
-- the result of a request (/api/v1/diagnostics-results) once it has run its checks; the first
-- result stored for a request is kept (a replay changes nothing).
ALTER TABLE diagnostics_requests
    ADD COLUMN completed_at BIGINT,  -- collector clock, Unix ms
    ADD COLUMN result       TEXT;    -- the DiagnosticsResult as JSON

-- A device's requests, newest first (GET /api/v1/devices/{agent_id}/diagnostics).
CREATE INDEX diagnostics_by_agent ON diagnostics_requests (agent_id, requested_at DESC);
