-- Users pause, resume and cancel jobs: a job may be `paused` (unfinished: it keeps its
-- configuration's one active job slot) or `cancelled` (finished), and a model-day that a cancel
-- stopped before it started is `cancelled`.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'partial', 'failed', 'interrupted',
                      'paused', 'cancelled'));
DROP INDEX jobs_active_config;
CREATE UNIQUE INDEX jobs_active_config ON jobs (config_hash)
    WHERE status IN ('pending', 'running', 'interrupted', 'paused');
ALTER TABLE job_details DROP CONSTRAINT job_details_status_check;
ALTER TABLE job_details ADD CONSTRAINT job_details_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'refused', 'cancelled'));
