-- When an order's price stops holding: its quote's `valid_days` after it
-- was priced. An order past it must be priced again before it is approved.
-- Orders priced before this migration get the default 30 days from their
-- last change (their pricing time is not kept apart).
ALTER TABLE orders ADD COLUMN quote_valid_until_ms INTEGER;
UPDATE orders SET quote_valid_until_ms = updated_at_ms + 2592000000 WHERE quote IS NOT NULL;

-- The quotes an order had before it was priced again, newest last.
CREATE TABLE order_quotes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id        TEXT NOT NULL,
    job_id          TEXT,
    quote           TEXT NOT NULL,
    total           REAL,
    currency        TEXT,
    replaced_at_ms  INTEGER NOT NULL
);
CREATE INDEX order_quotes_by_order ON order_quotes (order_id, id);
