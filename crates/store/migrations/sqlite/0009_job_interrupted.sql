-- no-transaction
-- A job whose process died before it finished is `interrupted` (its running model-days back to
-- pending; it resumes on the next trigger or `serve` start). SQLite cannot change a CHECK
-- constraint in place, so `jobs` is rebuilt. Foreign keys are off while it is: with them on,
-- dropping the old table would cascade into job_details and the event log. This migration runs
-- outside sqlx's transaction (PRAGMA foreign_keys is ignored inside one) and opens its own.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE jobs_0009 (
    id                 TEXT PRIMARY KEY NOT NULL,
    config             TEXT NOT NULL,
    config_hash        TEXT NOT NULL,
    currency           TEXT NOT NULL,
    currency_precision INTEGER NOT NULL,
    status             TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'interrupted')),
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    error              TEXT
);
INSERT INTO jobs_0009 (id, config, config_hash, currency, currency_precision, status,
                       created_at, started_at, finished_at, error)
    SELECT id, config, config_hash, currency, currency_precision, status,
           created_at, started_at, finished_at, error FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_0009 RENAME TO jobs;
CREATE INDEX jobs_config_hash ON jobs (config_hash);
CREATE INDEX jobs_status ON jobs (status);
-- At most one unfinished job per configuration: re-triggering finds it instead of duplicating it.
CREATE UNIQUE INDEX jobs_active_config ON jobs (config_hash)
    WHERE status IN ('pending', 'running', 'interrupted');
COMMIT;
PRAGMA foreign_keys = ON;
