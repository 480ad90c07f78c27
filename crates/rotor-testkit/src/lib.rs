//! Throwaway servers for Rotor's tests: a real PostgreSQL ([`PgServer`]), a real
//! MariaDB ([`MariaDb`]) and a webhook receiver ([`WebhookReceiver`]). The databases
//! are started from the binaries Debian's `postgresql` and `mariadb-server` packages
//! install (`scripts/ensure-test-deps` installs them), each
//! in its own temporary directory, listening on `127.0.0.1` on a free port. No Docker.
//!
//! Password checks are real: PostgreSQL authenticates TCP connections with
//! `scram-sha-256`, MariaDB with `mysql_native_password`, and the superuser has a
//! random password. Dropping a server kills it and removes its directory.
//!
//! ```no_run
//! # fn demo() -> anyhow::Result<()> {
//! let pg = rotor_testkit::PgServer::start()?;
//! let url = pg.url("postgres"); // postgres://postgres:<password>@127.0.0.1:<port>/postgres
//! pg.pause()?; // the port now refuses connections
//! pg.resume()?; // same port, same data
//! # Ok(()) }
//! ```
//!
//! This crate is for tests only (`publish = false`): it panics nowhere, but it reports
//! failures as [`anyhow::Error`] with the server's log tail, which is what a failing
//! test wants to print.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fuzz;
mod mariadb;
mod postgres;
mod process;
mod webhook;

pub use fuzz::fuzz_config;
pub use mariadb::MariaDb;
pub use postgres::PgServer;
pub use webhook::{Answer, Received, WebhookReceiver};
