-- Workflow runs, driven by a stateless coordinator: every change of a run is one transition
-- committed with the id of the signal that caused it (`workflow_signals` is the applied-set, so
-- a redelivered signal changes nothing), optimistic checks on the node states it read, and the
-- events it emits (with a per-database sequence for WebSocket resume).
CREATE TABLE workflow_runs (
    id               TEXT PRIMARY KEY NOT NULL,
    workflow_id      TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    workflow_version INTEGER NOT NULL,
    ir_hash          TEXT NOT NULL REFERENCES blobs (hash),
    status           TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled')),
    inputs           TEXT NOT NULL,
    tokens           INTEGER NOT NULL DEFAULT 0,
    revision         INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    created_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX workflow_runs_status ON workflow_runs (status);

CREATE TABLE workflow_node_states (
    run_id      TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id     TEXT NOT NULL,
    status      TEXT NOT NULL
        CHECK (status IN ('pending', 'queued', 'running', 'waiting', 'completed', 'failed', 'skipped')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    output_hash TEXT REFERENCES blobs (hash),
    error       TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, node_id)
);

CREATE TABLE workflow_signals (
    run_id     TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    signal_id  TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (run_id, signal_id)
);

CREATE TABLE workflow_events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    node_id TEXT,
    payload TEXT NOT NULL,
    at      TEXT NOT NULL
);
CREATE INDEX workflow_events_run ON workflow_events (run_id, seq);
