-- Consumers: who uses which version of a secret, so that a rotation never
-- invalidates a credential a live consumer still holds. A registered consumer (an
-- agent, `rotor run`, an application using the client library) heartbeats and is
-- live until `expires_at`; a reader (anyone who read the secret over an API) has no
-- lease and counts until the secret's `assume_adopted_after` has passed since its
-- last read.
CREATE TABLE consumers (
    secret_id   BIGINT NOT NULL REFERENCES secrets (id) ON DELETE CASCADE,
    consumer    TEXT    NOT NULL,
    -- registered | reader
    kind        TEXT    NOT NULL,
    version_id  TEXT    NOT NULL,
    principal   TEXT    NOT NULL,
    host        TEXT,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    -- A registered consumer's liveness deadline; NULL for readers.
    expires_at  BIGINT,
    PRIMARY KEY (secret_id, consumer)
);
CREATE INDEX consumers_last_seen ON consumers (last_seen);

-- Each secret's adoption policy (JSON); NULL is the default policy.
ALTER TABLE secrets ADD COLUMN rotation_adoption TEXT;
-- The adoption gates a rotation met (JSON list).
ALTER TABLE rotations ADD COLUMN gates TEXT NOT NULL DEFAULT '[]';
