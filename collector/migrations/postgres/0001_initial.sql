-- netmedic collector, PostgreSQL schema v1 (same model as the SQLite migrations 0001 + 0002).
-- Timestamps are BIGINT Unix milliseconds (UTC). JSON columns hold the wire representation.

-- Every incident event ever accepted, exactly once (deduplicated on event_id).
CREATE TABLE events (
    event_id     TEXT   NOT NULL PRIMARY KEY,
    agent_id     TEXT   NOT NULL,
    incident_id  TEXT   NOT NULL,
    seq          BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    payload      TEXT   NOT NULL,  -- the IncidentEvent as JSON
    received_at  BIGINT NOT NULL
);
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
    started_at   BIGINT  NOT NULL,
    resolved_at  BIGINT,
    auto_healed  BOOLEAN,          -- NULL while open
    summary      TEXT    NOT NULL,
    evidence     TEXT    NOT NULL, -- JSON object
    event_count  BIGINT  NOT NULL,
    last_seq     BIGINT  NOT NULL,
    first_received_at BIGINT NOT NULL,
    updated_at   BIGINT  NOT NULL,
    PRIMARY KEY (agent_id, incident_id)
);
CREATE INDEX incidents_newest ON incidents (started_at DESC, agent_id DESC, incident_id DESC);
CREATE INDEX incidents_by_status ON incidents (status, started_at DESC);
CREATE INDEX incidents_by_category ON incidents (category, started_at DESC);
CREATE INDEX incidents_by_agent ON incidents (agent_id, started_at DESC);

-- The action trail of each incident, one row per ActionRecord of each event.
CREATE TABLE incident_actions (
    event_id     TEXT   NOT NULL,
    agent_id     TEXT   NOT NULL,
    incident_id  TEXT   NOT NULL,
    seq          BIGINT NOT NULL,
    idx          BIGINT NOT NULL,
    action       TEXT   NOT NULL,
    outcome      TEXT   NOT NULL,
    at           BIGINT NOT NULL,
    detail       TEXT   NOT NULL,
    PRIMARY KEY (event_id, idx)
);
CREATE INDEX incident_actions_trail ON incident_actions (agent_id, incident_id, seq, idx);

-- Devices: enrolment (token hash, region) and the latest heartbeat.
CREATE TABLE devices (
    agent_id          TEXT   NOT NULL PRIMARY KEY,
    token_sha256      TEXT   UNIQUE,
    enrolled_at       BIGINT,
    revoked_at        BIGINT,
    region            TEXT,
    first_seen_at     BIGINT,
    last_seen_at      BIGINT,
    agent_version     TEXT,
    firmware_version  TEXT,
    last_heartbeat    TEXT
);
CREATE INDEX devices_by_last_seen ON devices (last_seen_at);

CREATE TABLE subscribers (
    agent_id     TEXT NOT NULL PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    region       TEXT,
    access_node  TEXT,
    plan         TEXT,
    cpe_model    TEXT,
    firmware     TEXT
);
CREATE INDEX subscribers_by_customer ON subscribers (customer_id);
CREATE INDEX subscribers_by_region ON subscribers (region);
CREATE INDEX subscribers_by_access_node ON subscribers (access_node);

CREATE TABLE killswitches (
    scope   TEXT   NOT NULL CHECK (scope IN ('fleet', 'region', 'device')),
    target  TEXT   NOT NULL,
    reason  TEXT   NOT NULL,
    set_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, target)
);

CREATE TABLE diagnostics_requests (
    request_id    TEXT   NOT NULL PRIMARY KEY,
    agent_id      TEXT   NOT NULL,
    checks        TEXT   NOT NULL,
    requested_at  BIGINT NOT NULL,
    delivered_at  BIGINT
);
CREATE INDEX diagnostics_pending ON diagnostics_requests (agent_id) WHERE delivered_at IS NULL;
