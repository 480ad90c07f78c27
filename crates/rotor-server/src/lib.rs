//! placeholder
pub mod sigv4;
