//! Schema migrations, embedded in the binary and applied in order on open.

/// `(version, sql)` for SQLite, oldest first.
pub(crate) const SQLITE: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_secrets.sql")),
    (2, include_str!("../migrations/sqlite/0002_access.sql")),
    (3, include_str!("../migrations/sqlite/0003_rotation.sql")),
    (4, include_str!("../migrations/sqlite/0004_events.sql")),
    (5, include_str!("../migrations/sqlite/0005_leases.sql")),
    (
        6,
        include_str!("../migrations/sqlite/0006_acting_principals.sql"),
    ),
    (7, include_str!("../migrations/sqlite/0007_consumers.sql")),
    (
        8,
        include_str!("../migrations/sqlite/0008_listing_indexes.sql"),
    ),
];

/// `(version, sql)` for PostgreSQL, oldest first.
pub(crate) const POSTGRES: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_secrets.sql")),
    (2, include_str!("../migrations/postgres/0002_access.sql")),
    (3, include_str!("../migrations/postgres/0003_rotation.sql")),
    (4, include_str!("../migrations/postgres/0004_events.sql")),
    (5, include_str!("../migrations/postgres/0005_leases.sql")),
    (
        6,
        include_str!("../migrations/postgres/0006_acting_principals.sql"),
    ),
    (7, include_str!("../migrations/postgres/0007_consumers.sql")),
    (
        8,
        include_str!("../migrations/postgres/0008_listing_indexes.sql"),
    ),
];
