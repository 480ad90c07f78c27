-- Principals, their policies and credentials, and the audit log's store sink.
CREATE TABLE principals (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    kind       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE policies (
    name       TEXT    PRIMARY KEY,
    document   TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE principal_policies (
    principal_id INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    policy       TEXT    NOT NULL REFERENCES policies (name) ON DELETE CASCADE,
    PRIMARY KEY (principal_id, policy)
);

-- Tokens are kept only as a keyed hash.
CREATE TABLE tokens (
    id           TEXT    PRIMARY KEY,
    principal_id INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    hash         BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER
);

-- Secret access keys are sealed like secret values.
CREATE TABLE access_keys (
    id           TEXT    PRIMARY KEY,
    principal_id INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    ciphertext   BLOB    NOT NULL,
    wrapped_key  BLOB    NOT NULL,
    algorithm    TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);

-- The audit log's store sink: one row per batch of consecutive entries.
CREATE TABLE audit_log (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    lines     TEXT   NOT NULL
);
