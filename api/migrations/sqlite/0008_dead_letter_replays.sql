-- A replayed dead letter names the job its replay queued, so a second replay
-- answers with that job instead of queueing another.
ALTER TABLE dead_letters ADD COLUMN replay_job_id TEXT;
