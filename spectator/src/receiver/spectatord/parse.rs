//! Parsing spectatord protocol lines as spectatord's `parse_line` does.

use std::collections::BTreeMap;

use crate::rules;

/// The meter type a line updates (its first character).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineType {
    /// `c`: counter.
    Counter,
    /// `g`: gauge.
    Gauge,
    /// `m`: max gauge.
    MaxGauge,
    /// `t`: timer (seconds).
    Timer,
    /// `d`: distribution summary.
    DistributionSummary,
    /// `T`: percentile timer (seconds).
    PercentileTimer,
    /// `D`: percentile distribution summary.
    PercentileDistributionSummary,
    /// `A`: age gauge.
    AgeGauge,
    /// `C`: monotonic counter.
    MonotonicCounter,
    /// `U`: monotonic counter of `u64`.
    MonotonicCounterUint,
    /// `X`: monotonic counter with a millisecond timestamp.
    MonotonicSampled,
}

impl LineType {
    /// The type of a line's first byte.
    pub fn from_symbol(symbol: u8) -> Option<LineType> {
        Some(match symbol {
            b'c' => LineType::Counter,
            b'g' => LineType::Gauge,
            b'm' => LineType::MaxGauge,
            b't' => LineType::Timer,
            b'd' => LineType::DistributionSummary,
            b'T' => LineType::PercentileTimer,
            b'D' => LineType::PercentileDistributionSummary,
            b'A' => LineType::AgeGauge,
            b'C' => LineType::MonotonicCounter,
            b'U' => LineType::MonotonicCounterUint,
            b'X' => LineType::MonotonicSampled,
            _ => return None,
        })
    }
}

/// One protocol line, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedLine {
    /// What kind of meter it updates.
    pub kind: LineType,
    /// The number after the type (`g,300:` a gauge TTL in seconds, `X,1543160297100:` a
    /// timestamp in milliseconds); 0 when absent.
    pub option: i64,
    /// The metric name, sanitised.
    pub name: String,
    /// The tags, sanitised; a key given twice keeps its last value.
    pub tags: BTreeMap<String, String>,
    /// The value (for `U` lines, `u64_value` as read, converted).
    pub value: f64,
    /// For `U` lines: the value as an unsigned 64-bit integer (negative ones wrap, as C's
    /// `strtoull` does).
    pub u64_value: Option<u64>,
    /// Characters after the value that were ignored, when there were any.
    pub ignored: Option<String>,
}

/// Why a line was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// Sanitises as spectatord does: byte by byte, anything outside `-._A-Za-z0-9~^` becomes `_`.
fn sanitize(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            let c = char::from(b);
            if b.is_ascii() && rules::is_valid_char(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What C's integer parsers skip before the digits: white space, then an optional sign.
/// Returns whether the sign was `-`, and where the digits start.
fn c_sign(s: &[u8]) -> (bool, usize) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    match s.get(i) {
        Some(b'-') => (true, i + 1),
        Some(b'+') => (false, i + 1),
        _ => (false, i),
    }
}

/// C's `strtoll` on a prefix: `(value, bytes used)`; `(0, 0)` when no digits.
fn strtoll(s: &[u8]) -> (i64, usize) {
    let (negative, mut i) = c_sign(s);
    let start = i;
    let mut v: i64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        let d = i64::from(s[i] - b'0');
        match v.checked_mul(10).and_then(|v| v.checked_sub(d)) {
            Some(n) => v = n,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    let v = match (overflow, negative) {
        (true, true) => i64::MIN,
        (true, false) => i64::MAX,
        (false, true) => v,
        (false, false) => v.checked_neg().unwrap_or(i64::MAX),
    };
    (v, i)
}

/// C's `strtod` on a prefix (decimal and `inf`/`infinity`/`nan` forms): `(value, bytes used)`,
/// `None` when no number starts there.
fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let start = i;
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let rest = &s[i..];
    let word =
        |w: &str| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes());
    let sign = if s.get(start) == Some(&b'-') {
        -1.0
    } else {
        1.0
    };
    if word("infinity") {
        return Some((sign * f64::INFINITY, i + 8));
    }
    if word("inf") {
        return Some((sign * f64::INFINITY, i + 3));
    }
    if word("nan") {
        let mut end = i + 3;
        // `nan(chars)` is a NaN too.
        if s.get(end) == Some(&b'(') {
            if let Some(close) = s[end..].iter().position(|&b| b == b')') {
                if s[end + 1..end + close]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    end += close + 1;
                }
            }
        }
        return Some((f64::NAN, end));
    }
    let mut digits = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_start = j;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    let text = std::str::from_utf8(&s[start..i]).ok()?;
    // Rust's parser takes every form the scan above accepts ("1.", ".5", "+2e3").
    let v: f64 = text.parse().ok()?;
    Some((v, i))
}

/// C's `strtoull` on a prefix: negative values wrap, out-of-range ones saturate.
fn strtoull(s: &[u8]) -> Option<(u64, usize)> {
    let (negative, mut i) = c_sign(s);
    let start = i;
    let mut v: u64 = 0;
    let mut overflow = false;
    while i < s.len() && s[i].is_ascii_digit() {
        match v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(s[i] - b'0')))
        {
            Some(n) => v = n,
            None => overflow = true,
        }
        i += 1;
    }
    if i == start {
        return None;
    }
    let v = if overflow {
        u64::MAX
    } else if negative {
        v.wrapping_neg()
    } else {
        v
    };
    Some((v, i))
}

/// Parses one protocol line as spectatord's `parse_line` does. Never panics, whatever the
/// input (a fuzz target can call it directly).
///
/// ```
/// use spectator::receiver::spectatord::{parse_line, LineType};
/// let line = parse_line("g,300:queue size,zone=us-east-1a:42").unwrap();
/// assert_eq!(line.kind, LineType::Gauge);
/// assert_eq!(line.option, 300);
/// assert_eq!(line.name, "queue_size");
/// assert_eq!(line.tags["zone"], "us-east-1a");
/// assert_eq!(line.value, 42.0);
/// assert!(parse_line("c::1").is_err()); // no name
/// ```
pub fn parse_line(line: &str) -> Result<ParsedLine, ParseError> {
    parse_bytes(line.as_bytes())
}

/// [`parse_line`] on raw bytes (a datagram need not be UTF-8).
pub fn parse_bytes(line: &[u8]) -> Result<ParsedLine, ParseError> {
    let Some(&symbol) = line.first() else {
        return err("empty line");
    };
    let mut p = 1;
    let mut option = 0;
    if line.get(p) == Some(&b',') {
        p += 1;
        let (extra, used) = strtoll(&line[p..]);
        if extra <= 0 {
            if symbol == b'g' {
                return err(format!("Invalid ttl specified for gauge at index {p}"));
            }
            if symbol == b'X' {
                return err(format!(
                    "Invalid timestamp specified for monotonic sampled source at index {p}"
                ));
            }
        }
        option = extra;
        p += used;
    }
    if line.get(p) != Some(&b':') {
        return err(format!("Expecting separator ':' at index {p}"));
    }
    p += 1;
    let m = &line[p..];
    // The name runs to the first ',' (tags follow) or ':' (the value follows).
    let Some(mut pos) = m.iter().position(|&b| b == b',' || b == b':') else {
        return err("Missing name");
    };
    if pos == 0 {
        return err("Missing name");
    }
    let name = sanitize(&m[..pos]);
    let mut tags = BTreeMap::new();
    if m[pos] == b',' {
        while m[pos] != b':' {
            pos += 1;
            let Some(eq) = m[pos..].iter().position(|&b| b == b'=') else {
                break;
            };
            let k_pos = pos + eq;
            let key = &m[pos..k_pos];
            let v_start = k_pos + 1;
            let Some(v_len) = m[v_start..].iter().position(|&b| b == b',' || b == b':') else {
                return err("Missing value");
            };
            let v_pos = v_start + v_len;
            tags.insert(sanitize(key), sanitize(&m[v_start..v_pos]));
            pos = v_pos;
        }
    }
    pos += 1;
    let value_text = m.get(pos..).unwrap_or_default();
    let kind = LineType::from_symbol(symbol);
    let (value, u64_value, used) = if kind == Some(LineType::MonotonicCounterUint) {
        let Some((v, used)) = strtoull(value_text) else {
            return err("Unable to parse value for measurement");
        };
        (v as f64, Some(v), used)
    } else {
        let Some((v, used)) = strtod(value_text) else {
            return err("Unable to parse value for measurement");
        };
        (v, None, used)
    };
    let rest = &value_text[used..];
    let ignored = match rest.first() {
        Some(&b) if !is_c_space(b) => Some(String::from_utf8_lossy(rest).into_owned()),
        _ => None,
    };
    let Some(kind) = kind else {
        return err(format!(
            "Unknown type: {}",
            char::from(symbol).escape_default()
        ));
    };
    Ok(ParsedLine {
        kind,
        option,
        name,
        tags,
        value,
        u64_value,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::spectatord::LineAggregator;
    #[test]
    fn parses_the_documented_forms() {
        let l = parse_line("c:server.numRequests,id=failed:1").unwrap();
        assert_eq!(l.kind, LineType::Counter);
        assert_eq!(l.name, "server.numRequests");
        assert_eq!(l.tags["id"], "failed");
        assert_eq!((l.value, l.option), (1.0, 0));
        let l = parse_line("g,300:anotherGauge:60").unwrap();
        assert_eq!((l.kind, l.option, l.value), (LineType::Gauge, 300, 60.0));
        let l = parse_line("X,1543160297100:monotonic.Source:42").unwrap();
        assert_eq!(
            (l.kind, l.option),
            (LineType::MonotonicSampled, 1543160297100)
        );
        let l = parse_line("A:age.gauge:0").unwrap();
        assert_eq!(l.kind, LineType::AgeGauge);
        let l = parse_line("t:server.requestLatency:0.042").unwrap();
        assert_eq!(l.value, 0.042);
        // Trailing characters after the value are ignored, as a warning.
        let l = parse_line("c:x:1.5abc").unwrap();
        assert_eq!((l.value, l.ignored.as_deref()), (1.5, Some("abc")));
        assert_eq!(parse_line("c:x:2 ").unwrap().ignored, None);
        // Sanitising: byte by byte.
        let l = parse_line("c:a b/é,k y=v|w:1").unwrap();
        assert_eq!(l.name, "a_b___");
        assert_eq!(l.tags["k_y"], "v_w");
        // Numbers as strtod reads them.
        for (text, v) in [
            ("nan", f64::NAN),
            ("-inf", f64::NEG_INFINITY),
            ("Infinity", f64::INFINITY),
            ("1e+300", 1e300),
            ("-0.0", -0.0),
            (".5", 0.5),
            ("3.", 3.0),
            ("+7", 7.0),
            ("  4", 4.0),
            ("1e", 1.0),
            ("18446744073709551615", 18446744073709551615.0),
        ] {
            let got = parse_line(&format!("g:n:{text}")).unwrap().value;
            assert!(
                got.to_bits() == v.to_bits() || (got.is_nan() && v.is_nan()),
                "{text}: {got}"
            );
        }
        let l = parse_line("U:u:-1").unwrap();
        assert_eq!(l.u64_value, Some(u64::MAX));
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "",
            "c",
            "c:",
            "c::1",
            "c:name",
            "c:name:",
            "c:name:abc",
            "c:name,k:1",
            "c:name,k=v",
            "q:name:1",
            "S:sketch:1",
            "g,0:name:1",
            "g,-5:name:1",
            "g,x:name:1",
            "c;name:1",
            ":::",
            "c:,:1",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?} parsed");
        }
        // An option on another type is read and ignored when not positive.
        assert!(parse_line("c,0:name:1").is_ok());
        assert!(parse_line("c,abc:name:1").is_err());
        assert_eq!(
            parse_line("c,:name:1x").unwrap().ignored.as_deref(),
            Some("x")
        );
        // A sampled source without its timestamp is taken, and records nothing.
        let mut agg = LineAggregator::default();
        agg.ingest_line("X:name:1").unwrap();
        agg.ingest_line("X:name:5").unwrap();
        assert!(agg.take_step().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(line in "\\PC{0,40}") {
            let _ = parse_line(&line);
        }
    }
}
