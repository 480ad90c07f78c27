//! Integration tests of the `rotor` binary: real server processes on `127.0.0.1:0`,
//! real signals, real files. One test binary; each module is one concern.

mod access;
mod agent;
mod attacks;
mod attacks_limits;
mod audit;
mod aws_sdk;
mod backup;
mod cli;
mod durability;
mod events;
mod figgy;
mod harness;
mod hygiene;
mod lifecycle;
mod multinode;
mod native;
mod rotation;
mod rotation_db;
mod safe_rotation;
mod tls;
mod try_rotation;
