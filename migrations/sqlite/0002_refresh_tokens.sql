-- Refresh tokens, for rotation and reuse detection. Only a hash of each
-- token's jti is kept. A login starts a family; every rotation adds a token
-- to it and revokes its predecessor; presenting a revoked token revokes the
-- whole family.
CREATE TABLE refresh_tokens (
    jti_hash   TEXT   PRIMARY KEY,
    family_id  TEXT   NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    -- NULL while the token may still be used.
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

-- Comment history of one feedback item, newest first, by id.
CREATE INDEX comments_feedback_id ON comments (feedback_id, id);
