-- no-transaction
-- Control of workflow runs. A run may be `paused` (unfinished: no new node starts until it is
-- resumed; what runs finishes and is kept) or `queued` (a concurrency limit was full when it
-- was started: it starts when a slot frees). A run has a priority (`high`, `normal`, `low`;
-- runs before this migration are `normal`) its node tasks are queued at, the API key that
-- started it (NULL: none, or before this migration) and the `limits.max_concurrent_runs` of the
-- definition it runs (NULL: none). An API key may limit the runs it has active at once.
-- SQLite cannot change a CHECK constraint in place, so workflow_runs is rebuilt as jobs were in 0013: foreign keys off while the table
-- is replaced (so that node states, signals, events, approvals and patches referencing it are
-- not cascaded away), outside sqlx's transaction (PRAGMA foreign_keys is ignored inside one),
-- in a transaction of its own.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE workflow_runs_0015 (
    id                  TEXT PRIMARY KEY NOT NULL,
    workflow_id         TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    workflow_version    INTEGER NOT NULL,
    ir_hash             TEXT NOT NULL REFERENCES blobs (hash),
    status              TEXT NOT NULL
        CHECK (status IN ('queued', 'pending', 'running', 'waiting', 'paused', 'completed',
                          'failed', 'cancelled')),
    inputs              TEXT NOT NULL,
    tokens              INTEGER NOT NULL DEFAULT 0,
    revision            INTEGER NOT NULL DEFAULT 0,
    error               TEXT,
    created_at          TEXT NOT NULL,
    finished_at         TEXT,
    definition_hash     TEXT REFERENCES blobs (hash),
    ir_version          INTEGER NOT NULL DEFAULT 1,
    agent_nodes_spawned INTEGER NOT NULL DEFAULT 0,
    priority            TEXT NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('high', 'normal', 'low')),
    api_key_id          TEXT,
    workflow_limit      INTEGER CHECK (workflow_limit IS NULL OR workflow_limit >= 1)
);
INSERT INTO workflow_runs_0015 (id, workflow_id, workflow_version, ir_hash, status, inputs,
                                tokens, revision, error, created_at, finished_at,
                                definition_hash, ir_version, agent_nodes_spawned)
    SELECT id, workflow_id, workflow_version, ir_hash, status, inputs, tokens, revision, error,
           created_at, finished_at, definition_hash, ir_version, agent_nodes_spawned
    FROM workflow_runs;
DROP TABLE workflow_runs;
ALTER TABLE workflow_runs_0015 RENAME TO workflow_runs;
CREATE INDEX workflow_runs_status ON workflow_runs (status);
CREATE INDEX workflow_runs_active_workflow ON workflow_runs (workflow_id, status);
CREATE INDEX workflow_runs_active_key ON workflow_runs (api_key_id, status);
ALTER TABLE api_keys ADD COLUMN max_concurrent_runs INTEGER
    CHECK (max_concurrent_runs IS NULL OR max_concurrent_runs >= 1);
COMMIT;
PRAGMA foreign_keys = ON;
