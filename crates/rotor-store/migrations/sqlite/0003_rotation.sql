-- Rotation: each secret's configuration and schedule, the registered rotators, and
-- one durable record per rotation (its token, the step it stands at, attempts).
ALTER TABLE secrets ADD COLUMN rotation_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE secrets ADD COLUMN rotator TEXT;
ALTER TABLE secrets ADD COLUMN rotation_rules TEXT;
ALTER TABLE secrets ADD COLUMN last_rotated_at INTEGER;
ALTER TABLE secrets ADD COLUMN next_rotation_at INTEGER;
-- When inside the window the scheduler starts the rotation (a random point).
ALTER TABLE secrets ADD COLUMN rotation_due_at INTEGER;
ALTER TABLE secrets ADD COLUMN rotation_failed TEXT;

-- The scheduler reads the earliest due secrets: an index range, never a full scan.
CREATE INDEX secrets_rotation_due ON secrets (rotation_due_at) WHERE rotation_due_at IS NOT NULL;

CREATE TABLE rotators (
    name        TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    -- Settings as JSON, without the signing key.
    config      TEXT    NOT NULL,
    -- The webhook signing key, sealed like a secret value.
    key_ciphertext  BLOB,
    key_wrapped     BLOB,
    key_algorithm   TEXT,
    key_id          TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE rotations (
    id          INTEGER PRIMARY KEY,
    secret_id   INTEGER NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    token       TEXT    NOT NULL,
    rotator     TEXT    NOT NULL,
    -- running | succeeded | failed | cancelled
    status      TEXT    NOT NULL,
    -- The step to run next: createSecret, setSecret, testSecret, finishSecret.
    step        TEXT    NOT NULL,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    finished_at INTEGER,
    -- A running rotation waiting out its backoff is resumed at this time.
    resume_at   INTEGER,
    error       TEXT,
    -- JSON list of finished steps with their timings.
    steps       TEXT    NOT NULL DEFAULT '[]',
    -- Fencing epoch of the scheduler lease that last advanced it.
    epoch       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (secret_id, token)
);

CREATE INDEX rotations_running ON rotations (resume_at) WHERE status = 'running';
CREATE INDEX rotations_by_secret ON rotations (secret_id, id);
