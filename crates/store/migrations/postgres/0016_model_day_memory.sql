-- Memory and reflection (issue 19): what a model remembers of a completed day — its decisions,
-- the change in value and the lesson of its reflection — stored with the day and carried into
-- the model's next sessions. NULL when the model's memory is off.
ALTER TABLE job_details ADD COLUMN memory JSONB;
