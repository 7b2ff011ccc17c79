-- A key's jobs queued or running, counted on every job it asks for (the
-- quota of jobs in flight, checked before the job and again in the
-- transaction that writes it). Without this the count read the whole job
-- table each time. Partial: only the jobs still in flight are indexed, so
-- the index stays as small as the queue, not as large as the history.
CREATE INDEX pricing_jobs_in_flight_by_key ON pricing_jobs (owner_key_id)
    WHERE status IN ('queued', 'running');
