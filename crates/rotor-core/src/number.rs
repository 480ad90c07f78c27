//! Whole numbers as JSON Schema counts them: `3` and `3.0` are the same integer, so a
//! field documented as an integer takes both (serde alone refuses `3.0`). Used with
//! `#[serde(default, deserialize_with = "rotor_core::number::optional")]`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// An optional whole number of type `T`: an integer, or a float without a fraction;
/// anything else (a fraction, out of `T`'s range) is an error.
pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = match n.as_i64() {
        Some(i) => Some(i),
        None => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64)
            .map(|f| f as i64),
    };
    whole
        .and_then(|i| T::try_from(i).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("expected a whole number in range, got {n}")))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "super::optional")]
        n: Option<u32>,
    }

    fn n(json: &str) -> Result<Option<u32>, serde_json::Error> {
        serde_json::from_str::<Holder>(json).map(|h| h.n)
    }

    #[test]
    fn whole_floats_count_as_integers_and_nothing_else_does() {
        assert_eq!(n(r#"{"n": 7}"#).unwrap(), Some(7));
        assert_eq!(n(r#"{"n": 7.0}"#).unwrap(), Some(7));
        assert_eq!(n(r#"{"n": null}"#).unwrap(), None);
        assert_eq!(n(r#"{}"#).unwrap(), None);
        for bad in [
            r#"{"n": 7.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": "7"}"#,
        ] {
            assert!(n(bad).is_err(), "{bad}");
        }
    }
}
