-- What the farm tells others: every event (a price, a failed price, an
-- order's new status) is written here in the transaction that made it
-- happen, so none is lost when a process dies before telling anyone. The
-- webhook fan-out and the broker relay each take the rows they have not yet
-- handled, in `seq` order.
CREATE TABLE farm_events (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id         TEXT NOT NULL UNIQUE,
    event_type       TEXT NOT NULL,
    -- Who may hear of it: the order's seller (by name) and the key that made
    -- the job or the order.
    seller           TEXT,
    owner_key_id     TEXT,
    -- The delivered document, `{"id", "type", "created_ms", "data"}`, as sent.
    body             TEXT NOT NULL,
    created_at_ms    INTEGER NOT NULL,
    fanned_out_at_ms INTEGER,
    published_at_ms  INTEGER
);
CREATE INDEX farm_events_to_fan_out ON farm_events (seq) WHERE fanned_out_at_ms IS NULL;
CREATE INDEX farm_events_to_publish ON farm_events (seq) WHERE published_at_ms IS NULL;

-- Where a key wants its events POSTed. The secret signs every delivery, so
-- it is kept as it is (a hash could not sign).
CREATE TABLE webhooks (
    webhook_id    TEXT PRIMARY KEY,
    key_id        TEXT NOT NULL REFERENCES api_keys (key_id),
    url           TEXT NOT NULL,
    -- The event types, separated by commas.
    events        TEXT NOT NULL,
    secret        TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    deleted_at_ms INTEGER
);
CREATE INDEX webhooks_by_key ON webhooks (key_id) WHERE deleted_at_ms IS NULL;

-- One event for one webhook, until it is delivered or given up on. A sender
-- holds a delivery while `claimed_until_ms` is in the future, so replicas do
-- not send the same one at once.
CREATE TABLE webhook_deliveries (
    delivery_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id         TEXT NOT NULL REFERENCES webhooks (webhook_id),
    event_seq          INTEGER NOT NULL,
    event_id           TEXT NOT NULL,
    event_type         TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    claimed_until_ms   INTEGER,
    created_at_ms      INTEGER NOT NULL,
    finished_at_ms     INTEGER,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at_ms) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, delivery_id DESC);

-- Every attempt of a delivery: what the receiver answered, or why nothing.
CREATE TABLE webhook_attempts (
    delivery_id INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    at_ms       INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
