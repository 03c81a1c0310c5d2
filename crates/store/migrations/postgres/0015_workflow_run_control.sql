-- Control of workflow runs. A run may be `paused` (unfinished: no new node starts until it is
-- resumed; what runs finishes and is kept) or `queued` (a concurrency limit was full when it
-- was started: it starts when a slot frees). A run has a priority (`high`, `normal`, `low`;
-- runs before this migration are `normal`) its node tasks are queued at, the API key that
-- started it (NULL: none, or before this migration) and the `limits.max_concurrent_runs` of the
-- definition it runs (NULL: none). An API key may limit the runs it has active at once.
ALTER TABLE workflow_runs DROP CONSTRAINT workflow_runs_status_check;
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_status_check
    CHECK (status IN ('queued', 'pending', 'running', 'waiting', 'paused', 'completed', 'failed',
                      'cancelled'));
ALTER TABLE workflow_runs ADD COLUMN priority TEXT NOT NULL DEFAULT 'normal'
    CHECK (priority IN ('high', 'normal', 'low'));
ALTER TABLE workflow_runs ADD COLUMN api_key_id TEXT;
ALTER TABLE workflow_runs ADD COLUMN workflow_limit INTEGER
    CHECK (workflow_limit IS NULL OR workflow_limit >= 1);
CREATE INDEX workflow_runs_active_workflow ON workflow_runs (workflow_id, status);
CREATE INDEX workflow_runs_active_key ON workflow_runs (api_key_id, status);
ALTER TABLE api_keys ADD COLUMN max_concurrent_runs INTEGER
    CHECK (max_concurrent_runs IS NULL OR max_concurrent_runs >= 1);
