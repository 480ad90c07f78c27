-- Change events, replication between namespaces, and subscriptions to events.

-- The outbox: every change appends here in its own transaction. Events never hold
-- secret values.
CREATE TABLE events (
    seq     BIGINT PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT   NOT NULL,
    secret  TEXT,
    detail  TEXT   NOT NULL
);

-- The last `seq` handed out. A transaction takes its events' numbers by updating this
-- one row just before it commits: the row lock makes writers on every node commit
-- events in `seq` order, and a rolled-back transaction gives its numbers back, so
-- `seq` has no gaps (a sequence would leave one at every rollback).
CREATE TABLE event_counter (
    one  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    last BIGINT  NOT NULL
);
INSERT INTO event_counter (one, last) VALUES (TRUE, 0);

CREATE TABLE replication_rules (
    name         TEXT    PRIMARY KEY,
    -- copy | merge
    kind         TEXT    NOT NULL,
    -- copy: a secret name, or a prefix ending in '/'; merge: unused ('')
    source       TEXT    NOT NULL,
    -- copy: a name, or a prefix for a prefix source; merge: the destination name
    destination  TEXT    NOT NULL,
    -- merge: the template, with ${/path} references
    template     TEXT,
    created_at   BIGINT NOT NULL,
    created_by   TEXT    NOT NULL
);

-- A destination is owned by its rule; writes to it go through the rule only.
ALTER TABLE secrets ADD COLUMN replica_of TEXT;
-- Set when a source of this destination was deleted: the destination is kept.
ALTER TABLE secrets ADD COLUMN source_deleted BIGINT NOT NULL DEFAULT 0;
-- Where a replicated version came from: JSON [{"secret": name, "version": id}, ...].
ALTER TABLE versions ADD COLUMN source TEXT;

CREATE TABLE subscriptions (
    name        TEXT    PRIMARY KEY,
    prefix      TEXT    NOT NULL,
    -- JSON list of event kinds; empty for all
    kinds       TEXT    NOT NULL,
    -- webhook | exec
    target_kind TEXT    NOT NULL,
    -- JSON: {"url": ...} or {"command": [...]}
    target      TEXT    NOT NULL,
    key_ciphertext  BYTEA,
    key_wrapped     BYTEA,
    key_algorithm   TEXT,
    key_id          TEXT,
    -- Every event up to this one has been delivered or dead-lettered.
    cursor      BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT    NOT NULL
);

CREATE TABLE deliveries (
    id           BIGSERIAL PRIMARY KEY,
    subscription TEXT    NOT NULL REFERENCES subscriptions (name) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    attempt      BIGINT NOT NULL,
    -- delivered | failed | dead
    status       TEXT    NOT NULL,
    at           BIGINT NOT NULL,
    error        TEXT
);

CREATE INDEX deliveries_by_subscription ON deliveries (subscription, id);
