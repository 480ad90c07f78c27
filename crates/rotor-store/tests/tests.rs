//! The conformance suite against each backend, and what only one backend shows. One
//! test binary; each module is one backend.

mod postgres;
mod sqlite;
