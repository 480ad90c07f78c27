//! The Lua and OpenResty primitives Kong's `parse_reference` is built on, re-implemented
//! so that a reference parses to the same parts here as in Kong:
//!
//! - [`split_url`]: LuaSocket's `socket.url.parse`, reduced to what a `{vault://...}`
//!   string can reach (the scheme is always `vault`);
//! - [`unescape_segment`]: LuaSocket's `url.unescape` (`%XX` only), applied to each path
//!   segment by `socket.url.parse_path`;
//! - [`unescape_uri`]: OpenResty's `ngx.unescape_uri` (`%XX`, and `+` as a space; a `%`
//!   not followed by two hex digits stays as it is);
//! - [`decode_args`]: OpenResty's `ngx.decode_args` (at most 100 arguments);
//! - [`tonumber`]: LuaJIT's `tonumber` in base 10 (`lj_strscan` with `STRSCAN_OPT_TONUM`).
//!
//! All of them work on bytes, as Lua strings are bytes.

/// The parts of `vault://AUTHORITY/PATH;PARAMS?QUERY#FRAGMENT`, each with the byte offset
/// where it starts in the string given to [`split_url`].
#[derive(Debug)]
pub(super) struct UrlParts<'a> {
    /// The host: the authority without `userinfo@`, `:port` and IPv6 brackets.
    pub host: Option<&'a str>,
    /// Where the authority starts.
    pub authority_at: usize,
    /// Where the authority ends (where the path, if any, starts).
    pub authority_end: usize,
    pub path: Option<(usize, &'a str)>,
    pub query: Option<(usize, &'a str)>,
    pub fragment: Option<(usize, &'a str)>,
}

/// Splits `url`, which starts with `vault://`, as `socket.url.parse` does: the authority
/// runs to the first `/` (so it may hold `?`, `#` or `;`); of the rest, the fragment is
/// everything after the first `#`, then the query everything after the first `?`, then
/// `;params` are cut off, and what is left is the path. `base` is added to offsets.
pub(super) fn split_url(url: &str, base: usize) -> UrlParts<'_> {
    debug_assert!(url.starts_with("vault://"));
    let authority_at = "vault://".len();
    let after = &url[authority_at..];
    let authority_len = after.find('/').unwrap_or(after.len());
    let authority = &after[..authority_len];
    let rest_at = authority_at + authority_len;
    let mut rest = &url[rest_at..];

    let mut fragment = None;
    if let Some(i) = rest.find('#') {
        fragment = Some((base + rest_at + i + 1, &rest[i + 1..]));
        rest = &rest[..i];
    }
    let mut query = None;
    if let Some(i) = rest.find('?') {
        query = Some((base + rest_at + i + 1, &rest[i + 1..]));
        rest = &rest[..i];
    }
    if let Some(i) = rest.find(';') {
        rest = &rest[..i];
    }
    let path = (!rest.is_empty()).then_some((base + rest_at, rest));

    UrlParts {
        host: host_of(authority),
        authority_at: base + authority_at,
        authority_end: base + rest_at,
        path,
        query,
        fragment,
    }
}

/// `userinfo@` up to the first `@` goes; then `:port` when the text after the last `:`
/// holds no `]`; then `[...]` brackets around at least one byte. Empty means no host.
fn host_of(authority: &str) -> Option<&str> {
    let mut a = match authority.find('@') {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    if let Some(i) = a.rfind(':')
        && !a[i + 1..].contains(']')
    {
        a = &a[..i];
    }
    if a.is_empty() {
        return None;
    }
    if a.len() >= 3 && a.starts_with('[') && a.ends_with(']') {
        return Some(&a[1..a.len() - 1]);
    }
    Some(a)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// LuaSocket's `url.unescape`: every `%XX` with two hex digits becomes that byte.
pub(super) fn unescape_segment(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// `ngx.unescape_uri`: `%XX` with two hex digits becomes that byte, `+` becomes a space,
/// any other `%` stays.
pub(super) fn unescape_uri(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                if let (Some(h), Some(l)) = (
                    s.get(i + 1).copied().and_then(hex),
                    s.get(i + 2).copied().and_then(hex),
                ) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// How many arguments `ngx.decode_args` reads before it stops (its default `max_args`).
pub(super) const MAX_ARGS: usize = 100;

/// One argument of a query string: its decoded key, and its decoded value (`None` for a
/// bare `key`, which Lua gives as `true`). `at` is where the argument starts in `query`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Arg {
    pub at: usize,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// `ngx.decode_args`: `&`-separated arguments, split at their first `=`, both sides
/// unescaped with [`unescape_uri`]; arguments whose key is empty are skipped (but count
/// towards the limit of [`MAX_ARGS`], after which the rest is ignored).
pub(super) fn decode_args(query: &[u8]) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut counted = 0;
    let mut start = 0;
    let mut pieces = query.split(|&b| b == b'&').peekable();
    while let Some(piece) = pieces.next() {
        let last = pieces.peek().is_none();
        let at = start;
        start += piece.len() + 1;
        if last && piece.is_empty() {
            // Nothing after the last `&`: ngx pushes no pair for it.
            break;
        }
        let (key, value) = match piece.iter().position(|&b| b == b'=') {
            Some(i) => (
                unescape_uri(&piece[..i]),
                Some(unescape_uri(&piece[i + 1..])),
            ),
            None => (unescape_uri(piece), None),
        };
        if !key.is_empty() {
            out.push(Arg { at, key, value });
        }
        if !last {
            // Only `&`-terminated pairs count towards the limit.
            counted += 1;
            if counted == MAX_ARGS {
                break;
            }
        }
    }
    out
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// LuaJIT's `tonumber(s)` (base 10): optional surrounding whitespace, a sign, then a
/// decimal number with optional fraction and exponent, a `0x` hexadecimal number with
/// optional fraction and `p` exponent, a `0b` binary integer, or `inf`, `infinity`,
/// `nan` in any case. `None` when Lua gives `nil`.
pub(super) fn tonumber(s: &[u8]) -> Option<f64> {
    if s.contains(&0) {
        return None;
    }
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let lower = |i: usize| at(i) | 0x20;
    let mut p = 0;
    let mut neg = false;
    if !at(0).is_ascii_digit() {
        while is_space(at(p)) {
            p += 1;
        }
        if at(p) == b'+' || at(p) == b'-' {
            neg = at(p) == b'-';
            p += 1;
        }
        if at(p) >= b'A' {
            let mut v = f64::NAN;
            if lower(p) == b'i' && lower(p + 1) == b'n' && lower(p + 2) == b'f' {
                v = if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                };
                p += 3;
                if (0..5).all(|k| lower(p + k) == b"inity"[k]) {
                    p += 5;
                }
            } else if lower(p) == b'n' && lower(p + 1) == b'a' && lower(p + 2) == b'n' {
                p += 3;
            }
            while is_space(at(p)) {
                p += 1;
            }
            return (p >= s.len()).then_some(v);
        }
    }

    let mut base = 10u32;
    let mut has_digit = false;
    let mut point: Option<usize> = None;
    if at(p) <= b'0' {
        if at(p) == b'0' {
            if lower(p + 1) == b'x' {
                base = 16;
                p += 2;
            } else if lower(p + 1) == b'b' {
                base = 2;
                p += 2;
            }
        }
        loop {
            match at(p) {
                b'0' => has_digit = true,
                b'.' if point.is_none() => point = Some(p),
                b'.' => return None,
                _ => break,
            }
            p += 1;
        }
    }
    let digits_at = p;
    let mut digits = Vec::new();
    let mut point_digits = 0usize; // digits scanned after the point
    loop {
        let c = at(p);
        let is_digit = if base == 16 {
            c.is_ascii_hexdigit()
        } else {
            c.is_ascii_digit()
        };
        if is_digit {
            digits.push(c);
            if point.is_some() {
                point_digits += 1;
            }
        } else if c == b'.' {
            if point.is_some() {
                return None;
            }
            point = Some(p);
        } else {
            break;
        }
        p += 1;
    }
    if !has_digit && digits.is_empty() {
        return None;
    }
    let mut is_integer = point.is_none();
    // A point before the significant digits (`0.05`) also shifts them.
    let leading_fraction_zeros = match point {
        Some(pt) if pt < digits_at => s[pt + 1..digits_at].len(),
        _ => 0,
    };

    let mut exponent: i64 = 0;
    if base >= 10 && lower(p) == if base == 16 { b'p' } else { b'e' } {
        is_integer = false;
        p += 1;
        let mut negx = false;
        if at(p) == b'+' || at(p) == b'-' {
            negx = at(p) == b'-';
            p += 1;
        }
        if !at(p).is_ascii_digit() {
            return None;
        }
        let mut x: i64 = 0;
        while at(p).is_ascii_digit() {
            if x < 65536 {
                x = x * 10 + i64::from(at(p) - b'0');
            }
            p += 1;
        }
        exponent = if negx { -x } else { x };
    }
    // Suffixes (`i`, `u`, `ll`, ...) are refused without the FFI options `tonumber` lacks.
    while is_space(at(p)) {
        p += 1;
    }
    if p < s.len() {
        return None;
    }

    let value = match base {
        10 => {
            let mut text = String::with_capacity(digits.len() + 24);
            text.push('0');
            text.extend(digits.iter().map(|&d| char::from(d)));
            let scale = -(point_digits as i64) - leading_fraction_zeros as i64 + exponent;
            text.push('e');
            text.push_str(&scale.to_string());
            let v: f64 = text.parse().ok()?;
            if is_integer && v == 0.0 {
                // LuaJIT's fast path negates an int32: `-0` is +0.
                return Some(0.0);
            }
            v
        }
        16 => {
            let (mantissa, dropped) = mantissa_bits(&digits, 4);
            let scale = 4 * (dropped as i64 - point_digits as i64 - leading_fraction_zeros as i64)
                + exponent;
            scale_pow2(mantissa, scale)
        }
        _ => {
            // `0b`: only 0 and 1, at most 64 of them, no fraction (trailing zeros after
            // a point are tolerated, as LuaJIT strips them before checking).
            let int_len = digits.len() - point_digits;
            if !digits.is_empty()
                && (leading_fraction_zeros > 0 || digits[int_len..].iter().any(|&d| d != b'0'))
            {
                return None;
            }
            let int = &digits[..int_len];
            if int.len() > 64 || int.iter().any(|&d| d > b'1') {
                return None;
            }
            int.iter()
                .fold(0u64, |acc, &d| acc << 1 | u64::from(d - b'0')) as f64
        }
    };
    Some(if neg { -value } else { value })
}

/// The first 16 significant hex digits as a 64-bit mantissa (a sticky bit standing for
/// any non-zero digit dropped after them), and how many digits were dropped.
fn mantissa_bits(digits: &[u8], bits_per_digit: u32) -> (u64, usize) {
    let significant: Vec<u8> = digits
        .iter()
        .skip_while(|&&d| d == b'0')
        .map(|&d| hex(d).unwrap_or(0))
        .collect();
    let keep = significant.len().min(16);
    let mut m = significant[..keep]
        .iter()
        .fold(0u64, |acc, &d| acc << bits_per_digit | u64::from(d));
    let dropped = significant.len() - keep;
    if significant[keep..].iter().any(|&d| d != 0) {
        m |= 1;
    }
    (m, dropped)
}

fn scale_pow2(mantissa: u64, exp2: i64) -> f64 {
    let mut v = mantissa as f64;
    let mut e = exp2.clamp(-4000, 4000);
    while e > 0 {
        let step = e.min(1000);
        v *= 2f64.powi(step as i32);
        e -= step;
    }
    while e < 0 {
        let step = (-e).min(1000);
        v /= 2f64.powi(step as i32);
        e += step;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonumber_reads_what_luajit_reads() {
        let cases: &[(&str, Option<f64>)] = &[
            ("1", Some(1.0)),
            ("  7\t", Some(7.0)),
            ("+3", Some(3.0)),
            ("-2", Some(-2.0)),
            ("1.5", Some(1.5)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("0.05", Some(0.05)),
            ("1e3", Some(1000.0)),
            ("1E-2", Some(0.01)),
            ("0x10", Some(16.0)),
            ("0X1p4", Some(16.0)),
            ("0x.8", Some(0.5)),
            ("0x1.8", Some(1.5)),
            ("0b101", Some(5.0)),
            ("0b1.0", Some(1.0)),
            ("inf", Some(f64::INFINITY)),
            ("-Infinity", Some(f64::NEG_INFINITY)),
            ("007", Some(7.0)),
            ("", None),
            (" ", None),
            (".", None),
            ("0x", None),
            ("1e", None),
            ("1e+", None),
            ("1.2.3", None),
            ("abc", None),
            ("1a", None),
            ("0b102", None),
            ("0b1.1", None),
            ("0x1e", Some(30.0)),
            ("1ll", None),
            ("1i", None),
            ("1 2", None),
            ("--1", None),
            ("infinite", None),
        ];
        for (text, want) in cases {
            assert_eq!(tonumber(text.as_bytes()), *want, "tonumber({text:?})");
        }
        assert!(tonumber(b"nan").unwrap().is_nan());
        assert!(tonumber(b" -NaN ").unwrap().is_nan());
        // The int32 fast path drops the sign of zero; the double path keeps it.
        assert!(tonumber(b"-0").unwrap().is_sign_positive());
        assert!(tonumber(b"-0.0").unwrap().is_sign_negative());
        assert_eq!(tonumber(b"1e400"), Some(f64::INFINITY));
        assert_eq!(
            tonumber(b"12345678901234567890"),
            Some(12345678901234567890.0)
        );
    }

    #[test]
    fn decode_args_matches_ngx() {
        let args = decode_args(b"a=1&b&&=x&c=2=3&d=&a=%41+b&e%3D=f");
        let got: Vec<(String, Option<String>)> = args
            .iter()
            .map(|a| {
                (
                    String::from_utf8_lossy(&a.key).into(),
                    a.value.as_ref().map(|v| String::from_utf8_lossy(v).into()),
                )
            })
            .collect();
        let want = [
            ("a", Some("1")),
            ("b", None),
            ("c", Some("2=3")),
            ("d", Some("")),
            ("a", Some("A b")),
            ("e=", Some("f")),
        ];
        let want: Vec<(String, Option<String>)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        assert_eq!(got, want);
        let many: Vec<String> = (0..150).map(|i| format!("k{i}=v")).collect();
        assert_eq!(decode_args(many.join("&").as_bytes()).len(), MAX_ARGS);
    }

    #[test]
    fn unescaping_follows_luasocket_then_ngx() {
        assert_eq!(unescape_segment(b"a%2Fb%zz%2"), b"a/b%zz%2");
        assert_eq!(unescape_segment(b"a+b"), b"a+b");
        assert_eq!(unescape_uri(b"a+b%41%4%"), b"a bA%4%");
    }

    #[test]
    fn the_host_drops_userinfo_port_and_brackets() {
        assert_eq!(host_of("env"), Some("env"));
        assert_eq!(host_of("user:pw@env:8080"), Some("env"));
        assert_eq!(host_of("a@b@c"), Some("b@c"));
        assert_eq!(host_of("a:b:c"), Some("a:b"));
        assert_eq!(host_of("[::1]"), Some("::1"));
        assert_eq!(host_of("[::1]:80"), Some("::1"));
        assert_eq!(host_of("[]"), Some("[]"));
        assert_eq!(host_of("user@"), None);
        assert_eq!(host_of(":80"), None);
        assert_eq!(host_of(""), None);
    }
}
