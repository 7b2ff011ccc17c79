-- Browser sessions of the operators' console and the instant-quote page. A
-- key is exchanged once for a session; the cookie carries a random token of
-- which only the SHA-256 is kept, like a key's secret. A session dies when it
-- expires, when it is signed out (revoked), or when its key is revoked.
CREATE TABLE web_sessions (
    token_sha256    TEXT PRIMARY KEY,
    key_id          TEXT NOT NULL REFERENCES api_keys (key_id),
    -- The token a page sends back in `X-CSRF-Token` on every state-changing
    -- call; a cross-site form cannot read it.
    csrf_token      TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    expires_at_ms   INTEGER NOT NULL,
    revoked_at_ms   INTEGER
);

CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at_ms);
