-- The job farm: lanes, cancellation, progress and heartbeats, the quote
-- cache, an audit trail of job events, and the dead letters the broker gave up on.

ALTER TABLE pricing_jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'fast' CHECK (lane IN ('fast', 'slow'));
ALTER TABLE pricing_jobs ADD COLUMN colour TEXT;
-- The quote-cache key the worker priced under: model, material, colour,
-- quantity, price-book version and fingerprint, FDM profile.
ALTER TABLE pricing_jobs ADD COLUMN quote_key TEXT;
-- Where a running job is, and when its worker last said so.
ALTER TABLE pricing_jobs ADD COLUMN stage TEXT;
ALTER TABLE pricing_jobs ADD COLUMN percent BIGINT;
ALTER TABLE pricing_jobs ADD COLUMN heartbeat_at_ms BIGINT;
ALTER TABLE pricing_jobs ADD COLUMN worker TEXT;
-- Deliveries to a worker so far (more than one after a worker died).
ALTER TABLE pricing_jobs ADD COLUMN deliveries BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pricing_jobs DROP CONSTRAINT pricing_jobs_status_check;
ALTER TABLE pricing_jobs ADD CONSTRAINT pricing_jobs_status_check
    CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled'));

CREATE INDEX pricing_jobs_quote_key ON pricing_jobs (quote_key) WHERE status = 'succeeded';
CREATE INDEX pricing_jobs_queued_by_lane ON pricing_jobs (lane, created_at_ms) WHERE status = 'queued';

-- Every change a job went through, in order: what the effect counters count.
CREATE TABLE job_events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id  TEXT NOT NULL,
    event   TEXT NOT NULL,
    at_ms   BIGINT NOT NULL
);
CREATE INDEX job_events_by_job ON job_events (job_id);

-- Messages the broker dead-lettered, kept for the operators to look at and replay.
CREATE TABLE dead_letters (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id         TEXT,
    queue          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    replayed_at_ms BIGINT
);
