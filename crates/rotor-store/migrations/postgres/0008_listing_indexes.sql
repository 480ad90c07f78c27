-- Work that looks at a few secrets or events reads an index, not every row, so that
-- its cost does not grow with the store: listings under a prefix range over names in
-- byte order (the unique index follows the database's collation, which a prefix
-- range cannot use), the rotation health report lists only rotating secrets, and
-- event pruning finds the old events and each consumer's latest acknowledgement
-- directly. (Purges use the deletion index of 0001.)
CREATE INDEX secrets_name_bytes ON secrets (name COLLATE "C");
CREATE INDEX secrets_rotating ON secrets (id) WHERE rotator IS NOT NULL;
CREATE INDEX events_at ON events (at, seq);
CREATE INDEX events_acks ON events (secret, ((detail::jsonb) ->> 'consumer'), seq)
    WHERE kind = 'consumer.ack';
