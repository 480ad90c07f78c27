//! Backups of a SQLite store: a consistent copy taken while the server writes
//! (`VACUUM INTO` on a read-only connection reads one snapshot of the database), and
//! a manifest kept inside the copy, so that a backup is one file.

use crate::errors::db_error;
use rotor_core::{Error, Result};
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::path::Path;

/// The table a backup's manifest is kept in.
const MANIFEST_TABLE: &str = "rotor_backup_manifest";

/// Copies the database at `db` into a new file `dest`, consistently, without
/// stopping the server that writes it. The copy holds what the store holds, sealed.
pub async fn snapshot(db: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        return Err(Error::invalid_request(format!(
            "{} exists already: a backup is written to a new file",
            dest.display()
        )));
    }
    let options = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| Error::invalid_request(format!("cannot open {}: {e}", db.display())))?;
    let target = dest
        .to_str()
        .ok_or_else(|| Error::invalid_parameter("the backup path must be UTF-8"))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    conn.close().await.map_err(db_error)?;
    restrict(dest)
}

/// A backup holds every secret sealed, and the names in the clear: the server's user
/// alone may read it.
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::internal(format!("cannot restrict {}: {e}", path.display())))
}

async fn open(path: &Path) -> Result<SqliteConnection> {
    let options = SqliteConnectOptions::new().filename(path);
    SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| Error::invalid_request(format!("cannot open {}: {e}", path.display())))
}

/// Writes `manifest` (JSON) into the backup at `path`.
pub async fn write_manifest(path: &Path, manifest: &str) -> Result<()> {
    let mut conn = open(path).await?;
    let mut tx = conn.begin().await.map_err(db_error)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {MANIFEST_TABLE} (manifest TEXT NOT NULL)"
    )))
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {MANIFEST_TABLE} (manifest) VALUES (?)"
    )))
    .bind(manifest)
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    one_file(&mut conn).await?;
    conn.close().await.map_err(db_error)
}

/// Leaves the database in one file (no write-ahead log beside it), so that copying the
/// file copies all of it.
async fn one_file(conn: &mut SqliteConnection) -> Result<()> {
    sqlx::query("PRAGMA journal_mode = DELETE")
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The manifest of the backup at `path`; an error when the file is not a backup.
pub async fn read_manifest(path: &Path) -> Result<String> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| Error::invalid_request(format!("cannot open {}: {e}", path.display())))?;
    let manifest: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT manifest FROM {MANIFEST_TABLE}"
    )))
    .fetch_optional(&mut conn)
    .await
    .map_err(|_| Error::invalid_request(format!("{} is not a Rotor backup", path.display())))?;
    conn.close().await.map_err(db_error)?;
    manifest.ok_or_else(|| Error::invalid_request(format!("{} has no manifest", path.display())))
}

/// Copies the backup at `from` to `to`, with the write-ahead log beside it if someone
/// left one there (a backup is written without one, but what SQLite would read of
/// the file is what must be checked and restored).
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::invalid_request(format!("copying {}: {e}", from.display()));
    std::fs::copy(from, to).map_err(io)?;
    let wal = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push("-wal");
        std::path::PathBuf::from(s)
    };
    if wal(from).is_file() {
        std::fs::copy(wal(from), wal(to)).map_err(io)?;
    }
    restrict(to)
}

/// Turns a copy of a backup into a store's database: the manifest goes.
pub async fn drop_manifest(path: &Path) -> Result<()> {
    let mut conn = open(path).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS {MANIFEST_TABLE}"
    )))
    .execute(&mut conn)
    .await
    .map_err(db_error)?;
    one_file(&mut conn).await?;
    conn.close().await.map_err(db_error)?;
    restrict(path)
}
