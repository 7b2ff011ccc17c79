-- Models, pricing jobs and the transactional outbox that feeds the job queue.
-- Same shape as the PostgreSQL schema; timestamps are ms since the Unix epoch.

CREATE TABLE models (
    model_id      TEXT PRIMARY KEY,
    size_bytes    INTEGER NOT NULL,
    triangles     INTEGER NOT NULL,
    format        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE pricing_jobs (
    job_id         TEXT PRIMARY KEY,
    model_id       TEXT NOT NULL REFERENCES models (model_id),
    material       TEXT NOT NULL,
    quantity       INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    quote          TEXT,
    error_kind     TEXT,
    error_message  TEXT,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    started_at_ms  INTEGER,
    finished_at_ms INTEGER
);

CREATE INDEX pricing_jobs_unfinished ON pricing_jobs (created_at_ms) WHERE status IN ('queued', 'running');

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    destination   TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    sent_at_ms    INTEGER
);

CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at_ms IS NULL;
