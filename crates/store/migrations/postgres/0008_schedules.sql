-- Cron fire times of workflows that a scheduler has claimed. The primary key makes each fire
-- time start at most one run however many schedulers share the database; `run_id` is set once
-- the run started, `error` when starting it failed (a failed start is not retried).
CREATE TABLE workflow_schedule_fires (
    workflow_id TEXT NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    fire_at     TIMESTAMPTZ NOT NULL,
    run_id      TEXT,
    error       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workflow_id, fire_at)
);
