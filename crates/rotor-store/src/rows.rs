//! Decoding rows into the store's types, once for both backends: they store the
//! same columns the same way (times as milliseconds, flags as integers, JSON as
//! text), so only the row type differs.

use crate::from_millis;
use rotor_core::model::{
    GateRun, RotationMeta, RotationRecord, RotationStatus, SecretMeta, StepRun, Tag,
};
use rotor_core::{Error, Result};
use sqlx::{ColumnIndex, Decode, Row, Type};

/// Column `column` of `row`. A row that does not decode is the store's fault: it is
/// logged and reported as an internal error that says nothing about the data.
pub(crate) fn get<'r, R, T>(row: &'r R, column: &str) -> Result<T>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(column).map_err(|e| {
        tracing::error!(error = %e, column, "a stored row does not decode");
        Error::internal("The store failed to complete the request")
    })
}

/// A time column that may be empty.
pub(crate) fn time<'r, R>(row: &'r R, column: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(get::<R, Option<i64>>(row, column)?.map(from_millis))
}

/// A `secrets` row.
pub(crate) fn secret_meta<'r, R>(row: &'r R) -> Result<SecretMeta>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let tags: String = get(row, "tags")?;
    let tags: Vec<Tag> = serde_json::from_str(&tags)
        .map_err(|_| Error::internal("stored tags are not valid JSON"))?;
    Ok(SecretMeta {
        id: get(row, "id")?,
        name: get(row, "name")?,
        arn: get(row, "arn")?,
        description: get(row, "description")?,
        kms_key_id: get(row, "kms_key_id")?,
        tags,
        created: from_millis(get(row, "created_at")?),
        last_changed: from_millis(get(row, "last_changed_at")?),
        deletion_date: time(row, "deletion_date")?,
        deleted_date: time(row, "deleted_date")?,
        rotation: rotation_meta(row)?,
        replica_of: get(row, "replica_of")?,
        source_deleted: get::<R, i64>(row, "source_deleted")? != 0,
    })
}

/// The rotation columns of a `secrets` row.
pub(crate) fn rotation_meta<'r, R>(row: &'r R) -> Result<RotationMeta>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(RotationMeta {
        enabled: get::<R, i64>(row, "rotation_enabled")? != 0,
        rotator: get(row, "rotator")?,
        rules: get(row, "rotation_rules")?,
        last_rotated: time(row, "last_rotated_at")?,
        next_rotation: time(row, "next_rotation_at")?,
        due: time(row, "rotation_due_at")?,
        failed: get(row, "rotation_failed")?,
        principal: get(row, "rotation_principal")?,
        adoption: match get::<R, Option<String>>(row, "rotation_adoption")? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|_| Error::internal("a stored adoption policy is unreadable"))?,
            None => Default::default(),
        },
    })
}

/// A query over rotations with their secret's name, as [`rotation_record`] reads
/// them; `$rest` is the dialect's `WHERE ...`.
macro_rules! select_rotations {
    ($rest:literal) => {
        concat!(
            "SELECT r.*, s.name AS secret_name FROM rotations r JOIN secrets s ON s.id = r.secret_id ",
            $rest
        )
    };
}
pub(crate) use select_rotations;

/// A `rotations` row joined with its secret's name.
pub(crate) fn rotation_record<'r, R>(row: &'r R) -> Result<RotationRecord>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = get(row, "status")?;
    let step: String = get(row, "step")?;
    let steps: String = get(row, "steps")?;
    let gates: String = get(row, "gates")?;
    Ok(RotationRecord {
        secret: get(row, "secret_id")?,
        name: get(row, "secret_name")?,
        token: get(row, "token")?,
        rotator: get(row, "rotator")?,
        status: RotationStatus::parse(&status)
            .ok_or_else(|| Error::internal("a stored rotation has an unknown status"))?,
        step: rotor_core::model::Step::parse(&step)
            .ok_or_else(|| Error::internal("a stored rotation has an unknown step"))?,
        attempt: get(row, "attempt")?,
        started: from_millis(get(row, "started_at")?),
        updated: from_millis(get(row, "updated_at")?),
        finished: time(row, "finished_at")?,
        resume_at: time(row, "resume_at")?,
        error: get(row, "error")?,
        steps: serde_json::from_str::<Vec<StepRun>>(&steps)
            .map_err(|_| Error::internal("a stored rotation has unreadable steps"))?,
        epoch: get(row, "epoch")?,
        gates: serde_json::from_str::<Vec<GateRun>>(&gates)
            .map_err(|_| Error::internal("a stored rotation has unreadable gates"))?,
    })
}

/// A rotation's steps as stored.
pub(crate) fn steps_json(record: &RotationRecord) -> Result<String> {
    serde_json::to_string(&record.steps).map_err(|_| Error::internal("steps could not be encoded"))
}

/// A rotation's gates as stored.
pub(crate) fn gates_json(record: &RotationRecord) -> Result<String> {
    serde_json::to_string(&record.gates).map_err(|_| Error::internal("gates could not be encoded"))
}

/// A secret's adoption policy as stored.
pub(crate) fn adoption_json(policy: &rotor_core::model::AdoptionPolicy) -> Result<String> {
    serde_json::to_string(policy)
        .map_err(|_| Error::internal("an adoption policy could not be encoded"))
}

/// An `events` row.
pub(crate) fn event<'r, R>(r: &'r R) -> Result<crate::Event>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::Event {
        seq: get(r, "seq")?,
        at: from_millis(get(r, "at")?),
        kind: get(r, "kind")?,
        secret: get(r, "secret")?,
        detail: get(r, "detail")?,
    })
}

/// A `replication_rules` row.
pub(crate) fn rule<'r, R>(r: &'r R) -> Result<crate::RuleRow>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::RuleRow {
        name: get(r, "name")?,
        kind: get(r, "kind")?,
        source: get(r, "source")?,
        destination: get(r, "destination")?,
        template: get(r, "template")?,
        created: from_millis(get(r, "created_at")?),
        created_by: get(r, "created_by")?,
    })
}

/// A `subscriptions` row, its signing key still sealed.
pub(crate) fn subscription<'r, R>(r: &'r R) -> Result<crate::SubscriptionRow>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let kinds: String = get(r, "kinds")?;
    let ciphertext: Option<Vec<u8>> = get(r, "key_ciphertext")?;
    let key = match ciphertext {
        Some(ciphertext) => Some(crate::SealedValue {
            ciphertext,
            wrapped_key: get(r, "key_wrapped")?,
            algorithm: get(r, "key_algorithm")?,
            key_id: get(r, "key_id")?,
            digest: Vec::new(),
        }),
        None => None,
    };
    Ok(crate::SubscriptionRow {
        name: get(r, "name")?,
        prefix: get(r, "prefix")?,
        kinds: serde_json::from_str(&kinds)
            .map_err(|_| Error::internal("stored event kinds are not valid JSON"))?,
        target_kind: get(r, "target_kind")?,
        target: get(r, "target")?,
        key,
        cursor: get(r, "cursor")?,
        created: from_millis(get(r, "created_at")?),
        created_by: get(r, "created_by")?,
    })
}

/// A `deliveries` row.
pub(crate) fn delivery<'r, R>(r: &'r R) -> Result<crate::DeliveryRow>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(crate::DeliveryRow {
        id: get(r, "id")?,
        subscription: get(r, "subscription")?,
        seq: get(r, "seq")?,
        attempt: get(r, "attempt")?,
        status: get(r, "status")?,
        at: from_millis(get(r, "at")?),
        error: get(r, "error")?,
    })
}

/// A `consumers` row.
pub(crate) fn consumer<'r, R>(row: &'r R) -> Result<crate::ConsumerRow>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let kind: String = get(row, "kind")?;
    Ok(crate::ConsumerRow {
        secret: get(row, "secret_id")?,
        consumer: get(row, "consumer")?,
        kind: crate::ConsumerKind::parse(&kind)
            .ok_or_else(|| Error::internal("a stored consumer has an unknown kind"))?,
        version_id: get(row, "version_id")?,
        principal: get(row, "principal")?,
        host: get(row, "host")?,
        first_seen: from_millis(get(row, "first_seen")?),
        last_seen: from_millis(get(row, "last_seen")?),
        expires: time(row, "expires_at")?,
    })
}
