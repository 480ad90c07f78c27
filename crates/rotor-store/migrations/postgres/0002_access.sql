-- Principals, their policies and credentials, and the audit log's store sink.
CREATE TABLE principals (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE policies (
    name       TEXT    PRIMARY KEY,
    document   TEXT    NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE principal_policies (
    principal_id BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    policy       TEXT    NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
    PRIMARY KEY (principal_id, policy)
);

-- Tokens are kept only as a keyed hash.
CREATE TABLE tokens (
    id           TEXT    PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    hash         BYTEA    NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);

-- Secret access keys are sealed like secret values.
CREATE TABLE access_keys (
    id           TEXT    PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    ciphertext   BYTEA    NOT NULL,
    wrapped_key  BYTEA    NOT NULL,
    algorithm    TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    created_at   BIGINT NOT NULL
);

-- The audit log's store sink: one row per batch of consecutive entries.
CREATE TABLE audit_log (
    first_seq BIGINT PRIMARY KEY,
    last_seq  BIGINT NOT NULL,
    lines     TEXT   NOT NULL
);
