-- netmedic collector, SQLite schema v4 (issue 8): NOC console users and sessions, incident
-- acknowledgements and notes.

-- NOC users: a password (Argon2id PHC string) and a role. Removing a user deletes the row (and
-- its sessions); the notes they wrote keep their name.
CREATE TABLE noc_users (
    name           TEXT    NOT NULL PRIMARY KEY,
    role           TEXT    NOT NULL CHECK (role IN ('viewer', 'operator')),
    password_phc   TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    password_set_at INTEGER NOT NULL
) STRICT;

-- Browser sessions: the cookie is 256 random bits, stored as SHA-256; the CSRF token is per
-- session. Rows past their expiry are ignored and swept at login.
CREATE TABLE noc_sessions (
    session_sha256 TEXT    NOT NULL PRIMARY KEY,
    user_name      TEXT    NOT NULL REFERENCES noc_users (name) ON DELETE CASCADE,
    csrf_token     TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL   -- absolute end (created_at + session_max_hours)
) STRICT;
CREATE INDEX noc_sessions_by_user ON noc_sessions (user_name);
CREATE INDEX noc_sessions_by_expiry ON noc_sessions (expires_at);

-- Acknowledgement of an incident by a NOC user (at most one; the first wins).
CREATE TABLE incident_acks (
    agent_id     TEXT    NOT NULL,
    incident_id  TEXT    NOT NULL,
    acked_by     TEXT    NOT NULL,
    acked_at     INTEGER NOT NULL,
    PRIMARY KEY (agent_id, incident_id)
) STRICT;

-- Free-text notes on an incident, in the order written.
CREATE TABLE incident_notes (
    note_id      INTEGER PRIMARY KEY,
    agent_id     TEXT    NOT NULL,
    incident_id  TEXT    NOT NULL,
    author       TEXT    NOT NULL,
    written_at   INTEGER NOT NULL,
    body         TEXT    NOT NULL
) STRICT;
CREATE INDEX incident_notes_by_incident ON incident_notes (agent_id, incident_id, note_id);

-- Incident list filters on the subscriber's CPE model and firmware.
CREATE INDEX subscribers_by_model ON subscribers (cpe_model);
CREATE INDEX subscribers_by_firmware ON subscribers (firmware);
