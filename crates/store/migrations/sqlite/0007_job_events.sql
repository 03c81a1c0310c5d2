-- The event log carries the trading events of simulation jobs too, so one sequence orders
-- everything `GET /ws` streams: an event belongs to a workflow run or to a job, never both.
-- SQLite cannot drop a NOT NULL constraint in place, so the table is rebuilt with its rows and
-- seq values; its AUTOINCREMENT counter is carried over, so a seq once handed out (even of an
-- event deleted since, with its run) is never handed out again.
CREATE TABLE workflow_events_0007 (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT REFERENCES workflow_runs (id) ON DELETE CASCADE,
    job_id  TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    node_id TEXT,
    payload TEXT NOT NULL,
    at      TEXT NOT NULL,
    CHECK ((run_id IS NULL) <> (job_id IS NULL))
);
INSERT INTO workflow_events_0007 (seq, run_id, job_id, kind, node_id, payload, at)
    SELECT seq, run_id, NULL, kind, node_id, payload, at FROM workflow_events;
DELETE FROM sqlite_sequence WHERE name = 'workflow_events_0007';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'workflow_events_0007', MAX(s) FROM (
        SELECT seq AS s FROM sqlite_sequence WHERE name = 'workflow_events'
        UNION ALL SELECT MAX(seq) FROM workflow_events_0007
    ) HAVING MAX(s) IS NOT NULL;
DROP TABLE workflow_events;
ALTER TABLE workflow_events_0007 RENAME TO workflow_events;
CREATE INDEX workflow_events_run ON workflow_events (run_id, seq);
CREATE INDEX workflow_events_job ON workflow_events (job_id, seq);
