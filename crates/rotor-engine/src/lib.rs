//! Rotor's secret service: the AWS Secrets Manager operations, over a [`Store`] and
//! envelope encryption.
//!
//! Routers call [`SecretService`] with domain requests and get domain results; the
//! service holds no HTTP types. It resolves a `SecretId` (name, full ARN or partial
//! ARN), seals values before they reach the store and opens them on the way out, and
//! keeps a read cache of sealed records (never plaintext) that every write through it
//! invalidates.
//!
//! ```no_run
//! # async fn demo() -> rotor_core::Result<()> {
//! use rotor_engine::{Caller, SecretService, CreateSecret};
//! use rotor_core::value::SecretValue;
//! use rotor_store::sqlite::SqliteStore;
//! use std::sync::Arc;
//! let service = SecretService::with_random_key(Arc::new(SqliteStore::ephemeral().await?), "123456789012");
//! let me = Caller::system("docs");
//! service.create(&me, CreateSecret {
//!     name: "prod/db".into(),
//!     region: "us-east-1".into(),
//!     value: Some(SecretValue::string("s3cr3t".into())?),
//!     ..Default::default()
//! }).await?;
//! let v = service.get_value(&me, "prod/db", None, None).await?;
//! assert_eq!(v.stages, vec!["AWSCURRENT".to_string()]);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod access;
pub mod audit;
pub mod backup;
mod cache;
mod caller;
pub mod consumers;
pub mod events;
pub mod hooks;
pub mod replication;
pub mod rotation;
mod service;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod fuzzing;

pub use access::{
    AccessService, PrincipalInfo, ROOT, RootCredentials, ScopedCredentials, Session, SigningScope,
    TokenInfo,
};
pub use caller::Caller;
pub use service::*;
