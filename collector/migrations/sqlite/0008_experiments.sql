-- netmedic collector, SQLite schema v8: holdout experiments and the arm of each incident.
-- An experiment puts a stable share of devices (by SHA-256 of salt ":" agent_id) in a control
-- arm where the scoped playbook runs in dry_run. Ended experiments are kept (ended_at set) so the
-- report can still compare their arms; only active ones are delivered in heartbeat replies.
CREATE TABLE experiments (
    id               TEXT    NOT NULL PRIMARY KEY,
    scope_kind       TEXT    NOT NULL CHECK (scope_kind IN ('playbook', 'check')),
    scope_name       TEXT    NOT NULL,  -- playbook name, or check id
    scope_cause      TEXT,              -- check scope only; NULL = every cause
    control_permille INTEGER NOT NULL CHECK (control_permille BETWEEN 1 AND 1000),
    salt             TEXT    NOT NULL,
    started_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    created_by       TEXT    NOT NULL
) STRICT;

-- The experiment that covered the incident and the device's arm in it, as the agent recorded.
ALTER TABLE incidents ADD COLUMN experiment_id TEXT;
ALTER TABLE incidents ADD COLUMN experiment_arm TEXT CHECK (experiment_arm IN ('treated', 'control'));
CREATE INDEX incidents_by_experiment ON incidents (experiment_id, experiment_arm)
    WHERE experiment_id IS NOT NULL;
