-- The MES order API: orders, who may call the API, every order's history,
-- and the CRM events already applied.

-- Credentials: a bearer token is `farm_<kind>_<key_id>.<secret>`; only the
-- SHA-256 of the secret is kept.
CREATE TABLE api_keys (
    key_id          TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('seller', 'operator', 'crm')),
    name            TEXT NOT NULL,
    secret_sha256   TEXT NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    revoked_at_ms   BIGINT
);

CREATE TABLE orders (
    order_id        TEXT PRIMARY KEY,
    -- Where it came from: `api` (a seller over HTTP) or `queue` (the RabbitMQ intake).
    source          TEXT NOT NULL CHECK (source IN ('api', 'queue')),
    -- The seller or customer the order belongs to; sellers see only theirs.
    seller          TEXT NOT NULL,
    seller_key_id   TEXT,
    customer        TEXT,
    external_id     TEXT,
    idempotency_key TEXT,
    request_sha256  TEXT,
    model_id        TEXT NOT NULL REFERENCES models (model_id),
    material        TEXT NOT NULL,
    colour          TEXT,
    quantity        BIGINT NOT NULL,
    job_id          TEXT,
    quote           TEXT,
    total           DOUBLE PRECISION,
    currency        TEXT,
    status          TEXT NOT NULL CHECK (status IN ('CREATED', 'PRICING', 'PRICED', 'PRICING_FAILED',
                        'MANUFACTURING_APPROVED', 'MANUFACTURING_STARTED', 'MANUFACTURING_COMPLETED', 'SHIPPED',
                        'CANCELLED')),
    failure         TEXT,
    assignee        TEXT,
    -- The newest CRM event applied, so an older one arriving late is ignored.
    crm_version     BIGINT,
    crm_event_at_ms BIGINT,
    created_at_ms   BIGINT NOT NULL,
    updated_at_ms   BIGINT NOT NULL,
    version         BIGINT NOT NULL DEFAULT 1
);

CREATE UNIQUE INDEX orders_external_id ON orders (source, external_id) WHERE external_id IS NOT NULL;
CREATE UNIQUE INDEX orders_idempotency ON orders (seller_key_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX orders_by_status ON orders (status, created_at_ms DESC, order_id DESC);
CREATE INDEX orders_by_seller ON orders (seller, created_at_ms DESC, order_id DESC);
CREATE INDEX orders_by_job ON orders (job_id) WHERE job_id IS NOT NULL;

-- Every status an order took, in order; its id is the change sequence.
CREATE TABLE order_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at_ms       BIGINT NOT NULL
);
CREATE INDEX order_events_by_order ON order_events (order_id);

-- CRM events seen, by the CRM's own id: a repeated one changes nothing.
CREATE TABLE crm_events (
    event_id       TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL
);

-- Who submitted a pricing job: a seller sees only its own.
ALTER TABLE pricing_jobs ADD COLUMN owner_key_id TEXT;
