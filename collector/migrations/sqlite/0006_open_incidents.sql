-- netmedic collector, SQLite schema v6: indexes of the open incidents, for the NOC overview.
-- Open incidents are a small share of a healthy fleet's history, so these partial indexes stay
-- small; without them the overview's "degraded devices" and "open by category" counts read
-- every open incident's row (seconds with a million incidents stored).

-- Does this device have an open incident? (degraded = online with one)
CREATE INDEX incidents_open_by_agent ON incidents (agent_id) WHERE status = 'open';
-- Open incidents counted by category from the index alone.
CREATE INDEX incidents_open_by_category ON incidents (category) WHERE status = 'open';
