-- The event log carries the events of engine runs too (paper runs' `order`, `fill` and `equity`
-- events), so `GET /ws` streams them in the one sequence: an event belongs to exactly one of a
-- workflow run, a simulation job or an engine run. Engine runs live in run folders, not in the
-- store, so `engine_run_id` has no foreign key.
ALTER TABLE workflow_events ADD COLUMN engine_run_id TEXT;
ALTER TABLE workflow_events DROP CONSTRAINT workflow_events_one_owner;
ALTER TABLE workflow_events ADD CONSTRAINT workflow_events_one_owner CHECK (
    (run_id IS NOT NULL)::int + (job_id IS NOT NULL)::int + (engine_run_id IS NOT NULL)::int = 1
);
CREATE INDEX workflow_events_engine_run ON workflow_events (engine_run_id, seq);
