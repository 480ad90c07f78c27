//! Rotor's domain model: secrets, versions, staging labels, names and ARNs.
//!
//! This crate holds the rules of the [AWS Secrets Manager API] that do not need any
//! I/O, so that every backend and every API applies them the same way and they can be
//! tested exhaustively:
//!
//! - [`name`]: secret names, ARNs, and resolving a `SecretId` given as a name, a full
//!   ARN or a partial ARN;
//! - [`label`]: the staging-label state machine (a label on at most one version,
//!   `AWSCURRENT` moves `AWSPREVIOUS` with it, `RemoveFromVersionId` rules, pruning of
//!   deprecated versions);
//! - [`filter`]: `ListSecrets` filters, including `!` negation;
//! - [`password`]: the `GetRandomPassword` options and character sets;
//! - [`value`]: secret values, which never print in `Debug`;
//! - [`error`]: the typed error every operation returns, named after AWS's exceptions.
//!
//! [AWS Secrets Manager API]: https://docs.aws.amazon.com/secretsmanager/latest/apireference/Welcome.html
//!
//! ```
//! use rotor_core::label::{LabelBoard, AWSCURRENT, AWSPREVIOUS};
//!
//! let mut board = LabelBoard::default();
//! board.put_version("v1", &[AWSCURRENT.to_string()]).unwrap();
//! board.put_version("v2", &[AWSCURRENT.to_string()]).unwrap();
//! assert_eq!(board.holder(AWSCURRENT), Some("v2"));
//! assert_eq!(board.holder(AWSPREVIOUS), Some("v1"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clock;
pub mod error;
pub mod filter;
pub mod label;
pub mod model;
pub mod name;
pub mod number;
pub mod password;
pub mod policy;
pub mod schedule;
pub mod value;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod fuzzing;

pub use error::{Error, ErrorKind, Result};
