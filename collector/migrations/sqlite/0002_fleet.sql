-- netmedic collector, SQLite schema v2: enrolled devices with token hashes, fleet state,
-- subscribers (filled by the importers of issue 7), kill switches and on-demand diagnostics.

-- Devices: enrolment (token hash, region) and the latest heartbeat. Rebuilt because the
-- heartbeat columns become nullable (an enrolled device has not been seen yet).
CREATE TABLE devices_v2 (
    agent_id          TEXT    NOT NULL PRIMARY KEY,
    token_sha256      TEXT    UNIQUE,   -- hex SHA-256 of the bearer token; NULL: not enrolled
    enrolled_at       INTEGER,
    revoked_at        INTEGER,          -- non-NULL: the token is refused
    region            TEXT,             -- `device add --region`; subscribers.region wins
    first_seen_at     INTEGER,
    last_seen_at      INTEGER,
    agent_version     TEXT,
    firmware_version  TEXT,
    last_heartbeat    TEXT              -- the Heartbeat as JSON
) STRICT;
INSERT INTO devices_v2 (agent_id, first_seen_at, last_seen_at, agent_version, firmware_version,
                        last_heartbeat)
    SELECT agent_id, first_seen_at, last_seen_at, agent_version, firmware_version, last_heartbeat
    FROM devices;
DROP TABLE devices;
ALTER TABLE devices_v2 RENAME TO devices;
CREATE INDEX devices_by_last_seen ON devices (last_seen_at);

-- Subscriber mapping (DESIGN §4): device ↔ customer, region, access node, plan, CPE, firmware.
CREATE TABLE subscribers (
    agent_id     TEXT NOT NULL PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    region       TEXT,
    access_node  TEXT,
    plan         TEXT,
    cpe_model    TEXT,
    firmware     TEXT
) STRICT;
CREATE INDEX subscribers_by_customer ON subscribers (customer_id);
CREATE INDEX subscribers_by_region ON subscribers (region);
CREATE INDEX subscribers_by_access_node ON subscribers (access_node);

-- Kill switches: scope 'fleet' (target ''), 'region' (target = region) or 'device'.
CREATE TABLE killswitches (
    scope   TEXT    NOT NULL CHECK (scope IN ('fleet', 'region', 'device')),
    target  TEXT    NOT NULL,
    reason  TEXT    NOT NULL,
    set_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, target)
) STRICT;

-- On-demand diagnostics, delivered once in the device's next heartbeat reply.
CREATE TABLE diagnostics_requests (
    request_id    TEXT    NOT NULL PRIMARY KEY,
    agent_id      TEXT    NOT NULL,
    checks        TEXT    NOT NULL,   -- comma-separated check ids
    requested_at  INTEGER NOT NULL,
    delivered_at  INTEGER
) STRICT;
CREATE INDEX diagnostics_pending ON diagnostics_requests (agent_id) WHERE delivered_at IS NULL;

CREATE INDEX incidents_by_category ON incidents (category, started_at DESC);
CREATE INDEX incidents_by_agent ON incidents (agent_id, started_at DESC);
