-- Model-days refused by the kill switch get their own status, `refused`, and every model-day
-- counts the tool calls its model made (`tool_calls`; NULL where no session ran). Completed
-- days get their count from tool_usage (step 0 is not the model's call).
ALTER TABLE job_details DROP CONSTRAINT job_details_status_check;
ALTER TABLE job_details ADD CONSTRAINT job_details_status_check
    CHECK (status IN ('pending', 'running', 'completed', 'failed', 'refused'));
ALTER TABLE job_details ADD COLUMN tool_calls INTEGER;
UPDATE job_details d SET tool_calls = (
    SELECT COUNT(*) FROM tool_usage u
     WHERE u.job_id = d.job_id AND u.model = d.model AND u.date = d.date AND u.step > 0)
WHERE d.status = 'completed';
