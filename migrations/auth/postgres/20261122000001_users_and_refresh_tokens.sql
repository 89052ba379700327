-- herald-auth: accounts and refresh tokens (design section 5).
-- This history is kept in `_herald_auth_migrations`, apart from other services' tables.

-- One row per account. `id` is a UUIDv7 (the JWT `sub`); `password_hash` is an argon2id PHC
-- string, never the password.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    username      text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL
);

-- "Alice" and "alice" are the same account name: uniqueness ignores case. The name of this
-- index is what the store matches to turn a unique violation into 409 Conflict.
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

-- `GET /auth/users?prefix=al` is `lower(username) LIKE 'al%'`; text_pattern_ops lets that
-- use an index whatever the database collation.
CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops);

-- Refresh tokens, stored only as SHA-256 hashes (the tokens are 256 random bits, so a fast
-- hash is enough). Each token belongs to a family: the chain of tokens one login produced
-- by rotation. Using a token sets `rotated_at`; presenting a rotated token again means it
-- was copied, so the whole family is revoked (`revoked_at`).
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    token_hash  bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);

CREATE UNIQUE INDEX refresh_tokens_token_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
-- Lets a periodic sweep delete expired tokens cheaply.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
