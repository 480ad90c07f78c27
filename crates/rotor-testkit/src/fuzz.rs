//! The configuration every `fuzz_*` property test of the workspace shares.

use proptest::prelude::*;
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

/// One edit of a sequence: a string's characters, or a message's bytes.
#[derive(Debug, Clone)]
pub enum Edit<T> {
    /// Insert these items at the position (modulo the length plus one).
    Insert(usize, Vec<T>),
    /// Replace the item at the position (modulo the length).
    Replace(usize, T),
    /// Remove up to this many items from the position.
    Remove(usize, usize),
    /// Repeat the run of up to `.1` items at the position `.2` times, in place.
    Duplicate(usize, usize, usize),
    /// Cut the sequence at the position.
    Truncate(usize),
}

fn edit_list<T: Copy + std::fmt::Debug + 'static>(
    insert: impl Strategy<Value = Vec<T>> + 'static,
    replace: impl Strategy<Value = T> + 'static,
    count: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<Edit<T>>> {
    let edit = prop_oneof![
        (any::<usize>(), insert).prop_map(|(i, items)| Edit::Insert(i, items)),
        (any::<usize>(), replace).prop_map(|(i, item)| Edit::Replace(i, item)),
        (any::<usize>(), 1usize..6).prop_map(|(i, n)| Edit::Remove(i, n)),
        (any::<usize>(), 1usize..10, 1usize..40).prop_map(|(i, n, k)| Edit::Duplicate(i, n, k)),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    proptest::collection::vec(edit, count)
}

/// `items` with `edits` applied in order.
pub fn apply<T: Copy>(items: &[T], edits: &[Edit<T>]) -> Vec<T> {
    let mut s = items.to_vec();
    for e in edits {
        let len = s.len();
        match e {
            Edit::Insert(i, new) => {
                let at = i % (len + 1);
                s.splice(at..at, new.iter().copied());
            }
            Edit::Replace(i, item) if len > 0 => s[i % len] = *item,
            Edit::Remove(i, n) if len > 0 => {
                let at = i % len;
                s.drain(at..(at + n).min(len));
            }
            Edit::Duplicate(i, n, k) if len > 0 => {
                let at = i % len;
                let piece = s[at..(at + n).min(len)].repeat(*k);
                s.splice(at..at, piece);
            }
            Edit::Truncate(i) => s.truncate(i % (len + 1)),
            _ => {}
        }
    }
    s
}

/// Up to three edits of a text, their new characters from `alphabet` nine times in
/// ten and any character otherwise: valid inputs bent the way a parser can break.
pub fn text_edits(alphabet: &'static str) -> impl Strategy<Value = Vec<Edit<char>>> {
    let chars: Vec<char> = alphabet.chars().collect();
    let ch = prop_oneof![
        9 => proptest::sample::select(chars),
        1 => any::<char>(),
    ];
    edit_list(ch.clone().prop_map(|c| vec![c]), ch, 0..4)
}

/// `text` with `edits` applied.
pub fn edited_text(text: &str, edits: &[Edit<char>]) -> String {
    apply(&text.chars().collect::<Vec<_>>(), edits)
        .into_iter()
        .collect()
}

/// One to three edits of a byte string, inserting bytes from `alphabet`, now and then
/// a character's UTF-8 or a byte that is never UTF-8.
pub fn byte_edits(alphabet: &'static [u8]) -> impl Strategy<Value = Vec<Edit<u8>>> {
    let bytes = prop_oneof![
        8 => proptest::sample::select(alphabet).prop_map(|b| vec![b]),
        1 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        1 => Just(vec![0xff]),
    ];
    edit_list(bytes, proptest::sample::select(alphabet), 1..4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_at_positions_taken_modulo_the_length() {
        let edits = [
            Edit::Insert(7, vec!['x']),
            Edit::Replace(0, 'A'),
            Edit::Duplicate(1, 1, 2),
            Edit::Remove(5, 1),
        ];
        // "abc" -> "abcx" (at 7 % 4) -> "Abcx" -> "Abbbcx" -> "Abbbc" (at 5 % 6)
        assert_eq!(edited_text("abc", &edits), "Abbbc");
        assert_eq!(apply(&[1u8, 2, 3], &[Edit::Truncate(5)]), vec![1]);
    }
}
