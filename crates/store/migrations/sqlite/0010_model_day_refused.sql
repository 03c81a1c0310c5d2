-- no-transaction
-- Model-days refused by the kill switch get their own status, `refused`, and every model-day
-- counts the tool calls its model made (`tool_calls`; NULL where no session ran). SQLite
-- cannot change a CHECK constraint in place, so job_details is rebuilt (SQLite's documented
-- twelve-step procedure): foreign keys off while the table is replaced, so that the rows of
-- positions, holdings, reasoning_logs and tool_usage that reference it are kept, then on again.
-- Completed days get their tool call count from tool_usage (step 0 is not the model's call).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE job_details_new (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    model           TEXT NOT NULL,
    date            TEXT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'refused')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    started_at      TEXT,
    finished_at     TEXT,
    duration_ms     INTEGER,
    error           TEXT,
    steps           INTEGER,
    tool_errors     INTEGER,
    cash            TEXT,
    portfolio_value TEXT,
    tool_calls      INTEGER,
    PRIMARY KEY (job_id, model, date)
);
INSERT INTO job_details_new (job_id, model, date, status, attempts, started_at, finished_at,
                             duration_ms, error, steps, tool_errors, cash, portfolio_value,
                             tool_calls)
SELECT d.job_id, d.model, d.date, d.status, d.attempts, d.started_at, d.finished_at,
       d.duration_ms, d.error, d.steps, d.tool_errors, d.cash, d.portfolio_value,
       CASE WHEN d.status = 'completed' THEN
           (SELECT COUNT(*) FROM tool_usage u
             WHERE u.job_id = d.job_id AND u.model = d.model AND u.date = d.date AND u.step > 0)
       END
FROM job_details d;
DROP TABLE job_details;
ALTER TABLE job_details_new RENAME TO job_details;
CREATE INDEX job_details_status ON job_details (job_id, status);
CREATE INDEX job_details_model_date ON job_details (model, date);
CREATE INDEX job_details_results_order ON job_details (date, model, job_id);
COMMIT;
PRAGMA foreign_keys = ON;
