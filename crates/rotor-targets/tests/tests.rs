//! Each driver against a real server started by rotor-testkit: passwords are replaced
//! (the old one refused), a user changes its own, clones get exactly the source's
//! privileges, a stopped server is reported unreachable, and quoting holds.

mod mysql;
mod postgres;
