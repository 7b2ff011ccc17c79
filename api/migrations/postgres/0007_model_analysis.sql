-- A model's analysis is read from its latest priced job: find that job by
-- model without scanning every job.
CREATE INDEX pricing_jobs_by_model ON pricing_jobs (model_id, finished_at_ms) WHERE status = 'succeeded';
