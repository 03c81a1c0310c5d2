-- A job whose process died before it finished is `interrupted` (its running model-days back to
-- pending; it resumes on the next trigger or `serve` start).
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'interrupted'));
-- At most one unfinished job per configuration: re-triggering finds it instead of duplicating it.
DROP INDEX jobs_active_config;
CREATE UNIQUE INDEX jobs_active_config ON jobs (config_hash)
    WHERE status IN ('pending', 'running', 'interrupted');
