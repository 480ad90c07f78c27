//! The errors both backends answer with, decided the same way without SQL: a database
//! failure (logged, told to the caller as an internal error that says nothing about the
//! data, or as `ResourceExists` for a unique-constraint violation), and the refusal to
//! change a secret marked for deletion.

use crate::millis;
use rotor_core::model::SecretMeta;
use rotor_core::{Error, Result};

/// Logs a database error and turns it into an internal error that says nothing about
/// the data. A unique-constraint violation is the client's doing: `ResourceExists`.
pub(crate) fn db_error(e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return Error::exists("The resource already exists");
    }
    tracing::error!(error = %e, "database error");
    Error::internal("The store failed to complete the request")
}

/// Refuses a change to a secret marked for deletion.
pub(crate) fn refuse_if_deleted(meta: &SecretMeta) -> Result<()> {
    refuse_if_deleted_date(meta.deletion_date.map(millis))
}

/// Refuses a change to a secret whose stored `deletion_date` (milliseconds) is set.
pub(crate) fn refuse_if_deleted_date(deletion_date: Option<i64>) -> Result<()> {
    if deletion_date.is_some() {
        return Err(Error::invalid_request(
            "You can't perform this operation on the secret because it was marked for deletion.",
        ));
    }
    Ok(())
}
