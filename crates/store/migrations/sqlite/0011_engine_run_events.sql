-- The event log carries the events of engine runs too (paper runs' `order`, `fill` and `equity`
-- events), so `GET /ws` streams them in the one sequence: an event belongs to exactly one of a
-- workflow run, a simulation job or an engine run. Engine runs live in run folders, not in the
-- store, so `engine_run_id` has no foreign key. SQLite cannot change a CHECK in place, so the
-- table is rebuilt with its rows and seq values as 0007 did; its AUTOINCREMENT counter is
-- carried over, so a seq once handed out is never handed out again.
CREATE TABLE workflow_events_0011 (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT REFERENCES workflow_runs (id) ON DELETE CASCADE,
    job_id        TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    engine_run_id TEXT,
    kind          TEXT NOT NULL,
    node_id       TEXT,
    payload       TEXT NOT NULL,
    at            TEXT NOT NULL,
    CHECK ((run_id IS NOT NULL) + (job_id IS NOT NULL) + (engine_run_id IS NOT NULL) = 1)
);
INSERT INTO workflow_events_0011 (seq, run_id, job_id, engine_run_id, kind, node_id, payload, at)
    SELECT seq, run_id, job_id, NULL, kind, node_id, payload, at FROM workflow_events;
DELETE FROM sqlite_sequence WHERE name = 'workflow_events_0011';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'workflow_events_0011', MAX(s) FROM (
        SELECT seq AS s FROM sqlite_sequence WHERE name = 'workflow_events'
        UNION ALL SELECT MAX(seq) FROM workflow_events_0011
    ) HAVING MAX(s) IS NOT NULL;
DROP TABLE workflow_events;
ALTER TABLE workflow_events_0011 RENAME TO workflow_events;
CREATE INDEX workflow_events_run ON workflow_events (run_id, seq);
CREATE INDEX workflow_events_job ON workflow_events (job_id, seq);
CREATE INDEX workflow_events_engine_run ON workflow_events (engine_run_id, seq);
