-- The event log carries the trading events of simulation jobs too, so one sequence orders
-- everything `GET /ws` streams: an event belongs to a workflow run or to a job, never both.
ALTER TABLE workflow_events ALTER COLUMN run_id DROP NOT NULL;
ALTER TABLE workflow_events ADD COLUMN job_id TEXT REFERENCES jobs (id) ON DELETE CASCADE;
ALTER TABLE workflow_events ADD CONSTRAINT workflow_events_one_owner
    CHECK ((run_id IS NULL) <> (job_id IS NULL));
CREATE INDEX workflow_events_job ON workflow_events (job_id, seq);
