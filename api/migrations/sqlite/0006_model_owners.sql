-- Models belong to who uploaded them: `model_id` is now a handle derived
-- from the owner and the bytes, so another seller's upload of the same file
-- gets a handle of its own and nobody learns from a hash whether a file was
-- ever uploaded. Rows from before hold NULL here and stay usable by anyone
-- who knows their id, as before.
ALTER TABLE models ADD COLUMN owner TEXT;
ALTER TABLE models ADD COLUMN uploader_key_id TEXT;
CREATE INDEX models_by_uploader ON models (uploader_key_id, created_at_ms);
