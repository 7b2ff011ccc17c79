-- Orders of several parts. Such an order keeps its first part in its own
-- columns (so the list shows it) and every part, the first too, in
-- `order_parts`, each priced by a job of its own. Its `job_id` stays
-- empty: a job settles a part, and the order is priced when all its parts
-- are, under the terms it was placed under.
ALTER TABLE orders ADD COLUMN part_count BIGINT NOT NULL DEFAULT 1;
-- The price book's terms charged once per order (`calculator::order::OrderTerms`, JSON).
ALTER TABLE orders ADD COLUMN order_terms TEXT;

CREATE TABLE order_parts (
    order_id  TEXT NOT NULL REFERENCES orders (order_id),
    position  BIGINT NOT NULL,
    model_id  TEXT NOT NULL REFERENCES models (model_id),
    material  TEXT NOT NULL,
    colour    TEXT,
    quantity  BIGINT NOT NULL,
    job_id    TEXT,
    quote     TEXT,
    total     DOUBLE PRECISION,
    failure   TEXT,
    PRIMARY KEY (order_id, position)
);
CREATE INDEX order_parts_by_job ON order_parts (job_id);
