-- The job farm: lanes, cancellation, progress and heartbeats, the quote
-- cache, an audit trail of job events, and the dead letters the broker gave up on.
-- SQLite cannot change a CHECK constraint in place, so the jobs table is rebuilt.

CREATE TABLE pricing_jobs_v2 (
    job_id          TEXT PRIMARY KEY,
    model_id        TEXT NOT NULL REFERENCES models (model_id),
    material        TEXT NOT NULL,
    colour          TEXT,
    quantity        INTEGER NOT NULL,
    lane            TEXT NOT NULL DEFAULT 'fast' CHECK (lane IN ('fast', 'slow')),
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    quote           TEXT,
    quote_key       TEXT,
    error_kind      TEXT,
    error_message   TEXT,
    stage           TEXT,
    percent         INTEGER,
    heartbeat_at_ms INTEGER,
    worker          TEXT,
    deliveries      INTEGER NOT NULL DEFAULT 0,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    started_at_ms   INTEGER,
    finished_at_ms  INTEGER
);

INSERT INTO pricing_jobs_v2 (job_id, model_id, material, quantity, status, quote, error_kind, error_message,
                             created_at_ms, updated_at_ms, started_at_ms, finished_at_ms)
SELECT job_id, model_id, material, quantity, status, quote, error_kind, error_message,
       created_at_ms, updated_at_ms, started_at_ms, finished_at_ms
FROM pricing_jobs;

DROP TABLE pricing_jobs;
ALTER TABLE pricing_jobs_v2 RENAME TO pricing_jobs;

CREATE INDEX pricing_jobs_unfinished ON pricing_jobs (created_at_ms) WHERE status IN ('queued', 'running');
CREATE INDEX pricing_jobs_quote_key ON pricing_jobs (quote_key) WHERE status = 'succeeded';
CREATE INDEX pricing_jobs_queued_by_lane ON pricing_jobs (lane, created_at_ms) WHERE status = 'queued';

CREATE TABLE job_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    event   TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX job_events_by_job ON job_events (job_id);

CREATE TABLE dead_letters (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id         TEXT,
    queue          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    replayed_at_ms INTEGER
);
