-- What the workflow runtime needs beyond 0004: the definition a run executes (patches apply to
-- it) and its IR version, when a queued node may start (durable timers and retry back-off),
-- approvals of `hitl` nodes, and the patches a run accepted.
ALTER TABLE workflow_runs ADD COLUMN definition_hash TEXT REFERENCES blobs (hash);
ALTER TABLE workflow_runs ADD COLUMN ir_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE workflow_runs ADD COLUMN agent_nodes_spawned INTEGER NOT NULL DEFAULT 0;

ALTER TABLE workflow_node_states ADD COLUMN not_before TIMESTAMPTZ;

CREATE TABLE workflow_approvals (
    id          TEXT PRIMARY KEY NOT NULL,
    run_id      TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id     TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    prompt      TEXT NOT NULL,
    status      TEXT NOT NULL
        CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'cancelled')),
    default_decision TEXT NOT NULL CHECK (default_decision IN ('approve', 'reject')),
    approvers   JSONB,
    expires_at  TIMESTAMPTZ NOT NULL,
    decision    TEXT CHECK (decision IN ('approve', 'reject')),
    decided_by  TEXT,
    comment     TEXT,
    decided_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (run_id, node_id, attempt)
);
CREATE INDEX workflow_approvals_status ON workflow_approvals (status, created_at);

CREATE TABLE workflow_patches (
    run_id          TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    ir_version      INTEGER NOT NULL,
    operations      JSONB NOT NULL,
    definition_hash TEXT NOT NULL REFERENCES blobs (hash),
    ir_hash         TEXT NOT NULL REFERENCES blobs (hash),
    applied_by      TEXT NOT NULL,
    applied_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (run_id, ir_version)
);
