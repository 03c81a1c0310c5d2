-- Results pages are ordered by (date, model, job_id): this index lets a page walk the rows in
-- order and stop after LIMIT instead of sorting every model-day.
CREATE INDEX job_details_results_order ON job_details (date, model, job_id);
