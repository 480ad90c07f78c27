-- Work that looks at a few secrets or events reads an index, not every row, so that
-- its cost does not grow with the store: the rotation health report lists only
-- rotating secrets, and event pruning finds the old events and each consumer's
-- latest acknowledgement directly. (Listings under a prefix use the name's own
-- unique index; purges the deletion index of 0001.)
CREATE INDEX secrets_rotating ON secrets (id) WHERE rotator IS NOT NULL;
CREATE INDEX events_at ON events (at);
CREATE INDEX events_acks ON events (secret, json_extract(detail, '$.consumer'), seq)
    WHERE kind = 'consumer.ack';
