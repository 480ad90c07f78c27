//! The engine over a real (ephemeral SQLite) store. One test binary; each module is
//! one concern, and `fixtures` holds the world they share.

mod access;
mod audit;
mod events;
mod fixtures;
mod replication;
mod rotation;
mod service;
