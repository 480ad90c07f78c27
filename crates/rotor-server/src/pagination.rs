//! Pagination shared by both APIs: an opaque `NextToken` that encodes an offset.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rotor_core::{Error, ErrorKind, Result};

/// `(page, next token)` of `items`: at most `max` (1..=`limit`, default `limit`)
/// items from the offset `next` encodes.
pub fn page<T>(
    items: Vec<T>,
    max: Option<i64>,
    next: Option<&str>,
    limit: i64,
) -> Result<(Vec<T>, Option<String>)> {
    let max = max.unwrap_or(limit);
    if !(1..=limit).contains(&max) {
        return Err(Error::validation(format!(
            "MaxResults must be between 1 and {limit}, got {max}"
        )));
    }
    let start = match next {
        None => 0,
        Some(token) => B64
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| {
                s.strip_prefix("offset:")
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidNextToken,
                    "The NextToken value is not valid.",
                )
            })?,
    };
    let total = items.len();
    let end = start.saturating_add(max as usize).min(total);
    let page: Vec<T> = items
        .into_iter()
        .skip(start)
        .take(end.saturating_sub(start))
        .collect();
    let next = (end < total).then(|| B64.encode(format!("offset:{end}")));
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<i32> = (0..25).collect();
        let mut seen = Vec::new();
        let mut next = None;
        loop {
            let (p, n) = page(items.clone(), Some(10), next.as_deref(), 100).unwrap();
            seen.extend(p);
            match n {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items);
        assert!(page(items.clone(), Some(0), None, 100).is_err());
        assert_eq!(
            page(items, None, Some("garbage"), 100).unwrap_err().kind,
            ErrorKind::InvalidNextToken
        );
    }
}
