-- no-transaction
-- Users pause, resume and cancel jobs: a job may be `paused` (unfinished: it keeps its
-- configuration's one active job slot) or `cancelled` (finished), and a model-day that a cancel
-- stopped before it started is `cancelled`. SQLite cannot change a CHECK constraint in place, so
-- jobs and job_details are rebuilt as in 0009 and 0010: foreign keys off while the tables are
-- replaced (so that nothing referencing them is cascaded away), outside sqlx's transaction
-- (PRAGMA foreign_keys is ignored inside one), in a transaction of its own.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE jobs_0013 (
    id                 TEXT PRIMARY KEY NOT NULL,
    config             TEXT NOT NULL,
    config_hash        TEXT NOT NULL,
    currency           TEXT NOT NULL,
    currency_precision INTEGER NOT NULL,
    status             TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'interrupted',
                          'paused', 'cancelled')),
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    error              TEXT
);
INSERT INTO jobs_0013 (id, config, config_hash, currency, currency_precision, status,
                       created_at, started_at, finished_at, error)
    SELECT id, config, config_hash, currency, currency_precision, status,
           created_at, started_at, finished_at, error FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_0013 RENAME TO jobs;
CREATE INDEX jobs_config_hash ON jobs (config_hash);
CREATE INDEX jobs_status ON jobs (status);
CREATE UNIQUE INDEX jobs_active_config ON jobs (config_hash)
    WHERE status IN ('pending', 'running', 'interrupted', 'paused');
CREATE TABLE job_details_0013 (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    model           TEXT NOT NULL,
    date            TEXT NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'failed', 'refused', 'cancelled')),
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
INSERT INTO job_details_0013 (job_id, model, date, status, attempts, started_at, finished_at,
                              duration_ms, error, steps, tool_errors, cash, portfolio_value,
                              tool_calls)
    SELECT job_id, model, date, status, attempts, started_at, finished_at, duration_ms, error,
           steps, tool_errors, cash, portfolio_value, tool_calls FROM job_details;
DROP TABLE job_details;
ALTER TABLE job_details_0013 RENAME TO job_details;
CREATE INDEX job_details_status ON job_details (job_id, status);
CREATE INDEX job_details_model_date ON job_details (model, date);
CREATE INDEX job_details_results_order ON job_details (date, model, job_id);
COMMIT;
PRAGMA foreign_keys = ON;
