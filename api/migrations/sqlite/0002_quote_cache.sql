-- The quote cache: a succeeded job's quote is reused for a new job with the
-- same key (model, material, colour, quantity, price-book version, FDM profile).
-- The key is the one the worker computed with its own price book and profile,
-- so a worker still on an older book never fills the cache under a newer key.

ALTER TABLE pricing_jobs ADD COLUMN quote_key TEXT;
ALTER TABLE pricing_jobs ADD COLUMN colour TEXT;

CREATE INDEX pricing_jobs_quote_key ON pricing_jobs (quote_key) WHERE status = 'succeeded';
