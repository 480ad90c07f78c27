//! The configuration every `fuzz_*` property test of the workspace shares.

use proptest::test_runner::Config;

/// The cases per property: `ROTOR_FUZZ_CASES`, or 256 (what the test command
/// affords; README's "Fuzzing" gives the 100,000-case release run). Failures are not
/// persisted to files: a failing case is printed, and becomes a named regression
/// test beside the parser.
pub fn fuzz_config() -> Config {
    let cases = std::env::var("ROTOR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
