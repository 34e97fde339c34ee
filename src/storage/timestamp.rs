//! Sync timestamps (PROTOCOL.md §4.1): integer milliseconds that are multiples of 10 inside,
//! seconds with exactly two decimals on the wire. Parsing never goes through `f64`, so
//! `0.29` is 290 ms and not 289.

use std::fmt::Write;

/// Writes `ms` as `<secs>.<2 digits>` (e.g. 1700000000250 → `1700000000.25`).
pub fn write_ts(out: &mut String, ms: i64) {
    let ms = ms.max(0);
    let _ = write!(out, "{}.{:02}", ms / 1000, ms % 1000 / 10);
}

/// `ms` rendered as a wire timestamp.
pub fn format_ts(ms: i64) -> String {
    let mut s = String::with_capacity(16);
    write_ts(&mut s, ms);
    s
}

/// Rounds a clock reading down to the 10 ms resolution of Sync timestamps.
pub fn round_down(ms: i64) -> i64 {
    ms - ms.rem_euclid(10)
}

/// The timestamp of the next write: after the clock and strictly after every earlier write.
pub fn next_write(now_ms: i64, high_water: i64) -> i64 {
    round_down(now_ms).max(high_water + 10)
}

/// Parses a client timestamp (`newer`, `older`, `X-If-*`): a non-negative decimal number of
/// seconds with any number of fraction digits, truncated to 10 ms. `None` for anything else
/// (negative, exponent, garbage, out of range).
pub fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut centis = 0i64;
    for (i, b) in frac.bytes().take(2).enumerate() {
        let digit = i64::from(b - b'0');
        centis += if i == 0 { digit * 10 } else { digit };
    }
    secs.checked_mul(1000)?.checked_add(centis * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_two_decimals() {
        assert_eq!(format_ts(1_700_000_000_250), "1700000000.25");
        assert_eq!(format_ts(1_700_000_000_000), "1700000000.00");
        assert_eq!(format_ts(1_700_000_000_050), "1700000000.05");
        assert_eq!(format_ts(0), "0.00");
    }

    #[test]
    fn parses_without_float_error() {
        assert_eq!(parse_ts("0.29"), Some(290));
        assert_eq!(parse_ts("0"), Some(0));
        assert_eq!(parse_ts("1700000000"), Some(1_700_000_000_000));
        assert_eq!(parse_ts("1700000000.25"), Some(1_700_000_000_250));
        assert_eq!(parse_ts("1700000000.259"), Some(1_700_000_000_250));
        assert_eq!(parse_ts("1.5"), Some(1500));
        assert_eq!(parse_ts(".5"), Some(500));
        for bad in [
            "-3",
            "",
            ".",
            "abc",
            "1e3",
            "NaN",
            "1.2.3",
            "99999999999999999999",
        ] {
            assert_eq!(parse_ts(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_are_strictly_increasing() {
        assert_eq!(next_write(1_000_005, 0), 1_000_000);
        assert_eq!(next_write(1_000_005, 1_000_000), 1_000_010);
        // The clock stepped back: still after the last write.
        assert_eq!(next_write(500, 1_000_000), 1_000_010);
    }
}
