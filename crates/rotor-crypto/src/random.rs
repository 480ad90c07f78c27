//! Randomness from the system source: passwords, tokens, ARN suffixes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rotor_core::password::PasswordSpec;

/// Random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).expect("the system random source works");
    out
}

/// A uniformly random number in `0..n` (`n > 0`), without modulo bias.
pub fn below(n: usize) -> usize {
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let x = u64::from_le_bytes(bytes::<8>());
        if x < zone {
            return (x % n) as usize;
        }
    }
}

/// A password following `spec`.
pub fn password(spec: &PasswordSpec) -> rotor_core::Result<String> {
    spec.generate(below)
}

/// A 256-bit random token, URL-safe base64, with a readable prefix.
pub fn token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes::<32>()))
}

/// An AWS-style access key id (`AKIA` + 16 upper-case alphanumerics).
pub fn access_key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id: String = (0..16)
        .map(|_| ALPHABET[below(ALPHABET.len())] as char)
        .collect();
    format!("AKIA{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut seen = [false; 7];
        for _ in 0..1000 {
            seen[below(7)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn tokens_are_distinct_and_long() {
        let a = token("rtr_");
        assert!(a.starts_with("rtr_") && a.len() >= 40);
        assert_ne!(a, token("rtr_"));
        assert_eq!(access_key_id().len(), 20);
    }
}
