-- Secrets, their versions (sealed values) and staging labels.
-- The same shape as the SQLite schema; times are unix milliseconds in both, flags
-- (`rotation_enabled`, `source_deleted`) are 0 or 1 in both.
CREATE TABLE secrets (
    id              BIGSERIAL PRIMARY KEY,
    name            TEXT   NOT NULL UNIQUE,
    arn             TEXT   NOT NULL UNIQUE,
    description     TEXT,
    kms_key_id      TEXT,
    tags            TEXT   NOT NULL DEFAULT '[]',
    created_at      BIGINT NOT NULL,
    last_changed_at BIGINT NOT NULL,
    deletion_date   BIGINT,
    deleted_date    BIGINT,
    -- Kept here so that a write never has to count or scan the versions.
    next_seq        BIGINT NOT NULL DEFAULT 0,
    version_count   BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE versions (
    secret_id   BIGINT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    version_id  TEXT   NOT NULL,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    ciphertext  BYTEA  NOT NULL,
    wrapped_key BYTEA  NOT NULL,
    algorithm   TEXT   NOT NULL,
    key_id      TEXT   NOT NULL,
    digest      BYTEA  NOT NULL,
    PRIMARY KEY (secret_id, version_id)
);

CREATE TABLE labels (
    secret_id  BIGINT NOT NULL,
    label      TEXT   NOT NULL,
    version_id TEXT   NOT NULL,
    PRIMARY KEY (secret_id, label),
    FOREIGN KEY (secret_id, version_id) REFERENCES versions (secret_id, version_id) ON DELETE CASCADE
);

-- Pruning looks for the oldest versions of a secret.
CREATE INDEX versions_age ON versions (secret_id, created_at, seq);

CREATE INDEX secrets_deletion ON secrets (deletion_date) WHERE deletion_date IS NOT NULL;

-- The master keys that have sealed data here: a server given another key refuses to
-- start rather than fail on every read.
CREATE TABLE master_keys (
    key_id   TEXT   PRIMARY KEY,
    added_at BIGINT NOT NULL
);
