-- Models, pricing jobs and the transactional outbox that feeds the job queue.
-- Timestamps are milliseconds since the Unix epoch, the same in both engines.

CREATE TABLE models (
    model_id      TEXT PRIMARY KEY,          -- sha256 of the bytes, hex
    size_bytes    BIGINT NOT NULL,
    triangles     BIGINT NOT NULL,
    format        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE pricing_jobs (
    job_id         TEXT PRIMARY KEY,
    model_id       TEXT NOT NULL REFERENCES models (model_id),
    material       TEXT NOT NULL,
    quantity       BIGINT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    quote          TEXT,                     -- the quote document, JSON
    error_kind     TEXT,
    error_message  TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL,
    started_at_ms  BIGINT,
    finished_at_ms BIGINT
);

CREATE INDEX pricing_jobs_unfinished ON pricing_jobs (created_at_ms) WHERE status IN ('queued', 'running');

CREATE TABLE outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination   TEXT NOT NULL,             -- logical queue: 'jobs'
    job_id        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms    BIGINT
);

CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at_ms IS NULL;
