//! `rotor operator`: backups of a server's data, taken online, verified without a
//! server, restored into a new data directory.
//!
//! A backup is one SQLite file: a consistent copy of the store (values still sealed
//! under the master key, which is never in it) with a manifest inside. Verifying
//! opens a private copy of it, decrypts every version, checks that each secret has
//! one `AWSCURRENT` and that the content matches the manifest.

use crate::admin::audit_envelope;
use crate::cli::{AuditKey, OperatorCommand};
use anyhow::{Context as _, bail};
use rotor_crypto::Envelope;
use rotor_engine::backup::{self, Manifest, Survey};
use rotor_store::Store as _;
use rotor_store::sqlite::{SqliteStore, backup as files};
use std::path::Path;
use std::process::ExitCode;

/// The store's file in a data directory.
const DB_FILE: &str = "rotor.db";

pub async fn operator(cmd: OperatorCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OperatorCommand::Backup { file, data_dir } => {
            let db = data_dir.join(DB_FILE);
            if !db.is_file() {
                bail!("{} holds no SQLite store ({DB_FILE})", data_dir.display());
            }
            if file.exists() {
                bail!(
                    "{} exists already: a backup is written to a new file",
                    file.display()
                );
            }
            let partial = file.with_extension("partial");
            let _ = std::fs::remove_file(&partial);
            files::snapshot(&db, &partial).await?;
            let survey = survey_of(&partial, None).await?;
            let manifest = survey.manifest("sqlite", chrono::Utc::now());
            files::write_manifest(&partial, &serde_json::to_string(&manifest)?).await?;
            std::fs::rename(&partial, &file)
                .with_context(|| format!("moving the backup to {}", file.display()))?;
            println!(
                "Backed up {} secrets, {} versions, {} labels to {} (sealed under {})",
                manifest.counts.secrets,
                manifest.counts.versions,
                manifest.counts.labels,
                file.display(),
                manifest.key_ids.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        OperatorCommand::VerifyBackup { file, key } => {
            let envelope = audit_envelope(&key)?;
            let (manifest, problems) = verify(&file, &envelope).await?;
            report(&file, &manifest, &problems)
        }
        OperatorCommand::Restore {
            file,
            data_dir,
            master_key_file,
        } => {
            let key = AuditKey {
                master_key_file: master_key_file.clone(),
                data_dir: Some(data_dir.clone()),
            };
            let envelope = audit_envelope(&key)
                .context("the backup is verified before it is restored: it needs the master key it was sealed under")?;
            let (manifest, problems) = verify(&file, &envelope).await?;
            if !problems.is_empty() {
                report(&file, &manifest, &problems)?;
                bail!("not restored: the backup does not verify");
            }
            let db = data_dir.join(DB_FILE);
            if db.exists() {
                bail!(
                    "{} holds a store already: restore into a new data directory",
                    data_dir.display()
                );
            }
            {
                use std::os::unix::fs::DirBuilderExt as _;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&data_dir)
                    .with_context(|| format!("creating {}", data_dir.display()))?;
            }
            let partial = data_dir.join(format!("{DB_FILE}.restoring"));
            files::copy(&file, &partial)?;
            files::drop_manifest(&partial).await?;
            std::fs::rename(&partial, &db).context("moving the restored store in place")?;
            println!(
                "Restored {} secrets, {} versions into {}; start the server there with the same master key",
                manifest.counts.secrets,
                manifest.counts.versions,
                data_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Surveys the store in the SQLite file `path` (opened as a store: a private copy
/// should be given when the file must stay as it is).
async fn survey_of(path: &Path, envelope: Option<&Envelope>) -> anyhow::Result<Survey> {
    let store = SqliteStore::open(path, true)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let what = if envelope.is_some() {
        "verifying"
    } else {
        "surveying"
    };
    let survey = backup::survey(&store, envelope, &mut progress_bar(what)).await;
    store.close().await;
    Ok(survey?)
}

/// A progress bar on standard error when it is a terminal (nothing otherwise), drawn
/// again at most every hundredth of the way.
fn progress_bar(what: &'static str) -> impl FnMut(u64, u64) {
    use std::io::{IsTerminal as _, Write as _};
    let shown = std::io::stderr().is_terminal();
    let mut last = u64::MAX;
    move |done, total| {
        let percent = (done * 100).checked_div(total).unwrap_or(100);
        if !shown || percent == last {
            return;
        }
        last = percent;
        let bar = "#".repeat((percent / 5) as usize);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{what} [{bar:<20}] {percent:>3}% ({done}/{total} secrets)"
        );
        if done == total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// Checks the backup `file` against its manifest, with every value decrypted, on a
/// private copy (the file is not changed). What is wrong, if anything.
async fn verify(file: &Path, envelope: &Envelope) -> anyhow::Result<(Manifest, Vec<String>)> {
    let manifest = backup::parse_manifest(&files::read_manifest(file).await?)?;
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let copy = scratch.path().join("backup.db");
    files::copy(file, &copy)?;
    let mut problems = Vec::new();
    if !manifest.key_ids.is_empty() && !manifest.key_ids.contains(&envelope.key_id().to_string()) {
        problems.push(format!(
            "the backup is sealed under master key {}, not under the one given ({})",
            manifest.key_ids.join(", "),
            envelope.key_id()
        ));
    }
    let survey = survey_of(&copy, Some(envelope)).await?;
    problems.extend(survey.differences(&manifest));
    problems.extend(survey.problems);
    Ok((manifest, problems))
}

fn report(file: &Path, manifest: &Manifest, problems: &[String]) -> anyhow::Result<ExitCode> {
    if problems.is_empty() {
        println!(
            "{}: verified ({} secrets, {} versions decrypted, taken {})",
            file.display(),
            manifest.counts.secrets,
            manifest.counts.versions,
            manifest.taken_at.to_rfc3339()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{}: does not verify", file.display());
    for p in problems {
        eprintln!("  {p}");
    }
    Ok(ExitCode::from(1))
}
