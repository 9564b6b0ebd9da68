-- netmedic collector, SQLite schema v3 (issue 7): API tokens for people and tools, customer
-- experience data (surveys, contacts) and mass-outage network events.

-- API tokens of people and tools (not devices): 256-bit random, stored as SHA-256.
CREATE TABLE api_tokens (
    name          TEXT    NOT NULL PRIMARY KEY,
    token_sha256  TEXT    NOT NULL UNIQUE,
    role          TEXT    NOT NULL CHECK (role IN ('viewer', 'operator')),
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;

-- Survey answers (NPS 0-10 and/or CSAT 1-5), upserted by survey_id.
CREATE TABLE surveys (
    survey_id    TEXT    NOT NULL PRIMARY KEY,
    customer_id  TEXT    NOT NULL,
    answered_at  INTEGER NOT NULL,
    nps          INTEGER CHECK (nps BETWEEN 0 AND 10),
    csat         INTEGER CHECK (csat BETWEEN 1 AND 5),
    channel      TEXT,
    verbatim     TEXT
) STRICT;
CREATE INDEX surveys_by_customer ON surveys (customer_id, answered_at);
CREATE INDEX surveys_by_time ON surveys (answered_at);

-- Support contacts (calls, tickets, chats), upserted by contact_id.
CREATE TABLE contacts (
    contact_id   TEXT    NOT NULL PRIMARY KEY,
    customer_id  TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    channel      TEXT,
    reason       TEXT,
    resolved_at  INTEGER
) STRICT;
CREATE INDEX contacts_by_customer ON contacts (customer_id, created_at);
CREATE INDEX contacts_by_time ON contacts (created_at);

-- Mass outages: incidents of many devices behind one access node in a short window. The id is
-- derived from (access node, first member's start), so every collector process computes the
-- same event.
CREATE TABLE network_events (
    event_id      TEXT    NOT NULL PRIMARY KEY,
    access_node   TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    resolved_at   INTEGER,            -- when its last member resolved
    until_at      INTEGER NOT NULL,   -- advisory validity, refreshed by each correlation pass
    device_count  INTEGER NOT NULL,
    member_count  INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX network_events_active ON network_events (access_node) WHERE resolved_at IS NULL;
CREATE INDEX network_events_by_start ON network_events (started_at);

-- An incident belongs to at most one network event.
CREATE TABLE network_event_members (
    agent_id     TEXT NOT NULL,
    incident_id  TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    PRIMARY KEY (agent_id, incident_id)
) STRICT;
CREATE INDEX network_event_members_by_event ON network_event_members (event_id);

CREATE INDEX incidents_by_start ON incidents (started_at);
