-- netmedic collector, SQLite schema v1.
-- Timestamps are integer Unix milliseconds (UTC). JSON columns hold the wire representation.

-- Every incident event ever accepted, exactly once (deduplicated on event_id).
CREATE TABLE events (
    event_id     TEXT    NOT NULL PRIMARY KEY,
    agent_id     TEXT    NOT NULL,
    incident_id  TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,  -- the IncidentEvent as JSON
    received_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX events_by_incident ON events (agent_id, incident_id, seq);

-- Incidents as assembled from all their events, whatever the arrival order.
CREATE TABLE incidents (
    agent_id     TEXT    NOT NULL,
    incident_id  TEXT    NOT NULL,
    check_id     TEXT    NOT NULL,
    cause        TEXT    NOT NULL,
    category     TEXT    NOT NULL,
    severity     TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('open', 'resolved')),
    started_at   INTEGER NOT NULL,
    resolved_at  INTEGER,
    auto_healed  INTEGER,           -- NULL while open, 0/1 once resolved
    summary      TEXT    NOT NULL,
    evidence     TEXT    NOT NULL,  -- JSON object
    event_count  INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL,
    first_received_at INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (agent_id, incident_id)
) STRICT;
CREATE INDEX incidents_newest ON incidents (started_at DESC, agent_id DESC, incident_id DESC);
CREATE INDEX incidents_by_status ON incidents (status, started_at DESC);

-- The action trail of each incident, one row per ActionRecord of each event.
CREATE TABLE incident_actions (
    event_id     TEXT    NOT NULL,  -- the event that carried the record
    agent_id     TEXT    NOT NULL,
    incident_id  TEXT    NOT NULL,
    seq          INTEGER NOT NULL,  -- seq of that event
    idx          INTEGER NOT NULL,  -- position of the record within that event
    action       TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    at           INTEGER NOT NULL,
    detail       TEXT    NOT NULL,
    PRIMARY KEY (event_id, idx)
) STRICT;
CREATE INDEX incident_actions_trail ON incident_actions (agent_id, incident_id, seq, idx);

-- Last known state of each device, from its heartbeats.
CREATE TABLE devices (
    agent_id          TEXT    NOT NULL PRIMARY KEY,
    first_seen_at     INTEGER NOT NULL,
    last_seen_at      INTEGER NOT NULL,
    agent_version     TEXT    NOT NULL,
    firmware_version  TEXT    NOT NULL,
    last_heartbeat    TEXT    NOT NULL  -- the Heartbeat as JSON
) STRICT;
