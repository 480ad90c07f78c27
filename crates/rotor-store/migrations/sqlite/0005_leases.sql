-- Leases: one node at a time holds a named lease (the rotation scheduler's), with a
-- fencing epoch that grows each time the lease changes hands. Rotation records
-- carry the epoch of the lease that advanced them; a save under an older epoch is
-- refused, so a node that lost the lease cannot finish a step.
CREATE TABLE leases (
    name       TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
