//! A local stand-in for [spectatord](https://github.com/Netflix-Skunkworks/spectatord), the
//! metrics sidecar today's Spectator clients (spectator-py 1.x, spectator-go 2.x,
//! spectator-cpp, this crate's spectatord output) write protocol lines to.
//!
//! [`SpectatordListener`] binds a UDP port or a unix datagram socket, parses every line as
//! spectatord does and aggregates them per step as spectatord's meters do; [`take_step`]
//! returns what spectatord would forward to Atlas for the lines received since the previous
//! step, as [`ReceivedMeasurement`]s (tags including `name` and `statistic`, op 0 or 10), so
//! they can be compared with what the Atlas HTTP output sends, or shown in a
//! [`LiveTable`](super::LiveTable).
//!
//! # The protocol
//!
//! A datagram holds lines separated by `\n`; each line is
//! `TYPE[,OPTION]:NAME[,KEY=VALUE]*:VALUE` (reference:
//! <https://github.com/Netflix-Skunkworks/spectatord#message-format>).
//!
//! | type | meter | forwarded per step | op |
//! |---|---|---|---|
//! | `c` | counter | `statistic=count` (a `statistic` tag on the line is kept): the sum of the positive values | add |
//! | `g` | gauge (`g,TTL:` sets a TTL in seconds) | `statistic=gauge` (kept if on the line): the last value; a NaN stops it (nothing sent) | max |
//! | `m` | max gauge | `statistic=max` (always): the largest value | max |
//! | `t` | timer, seconds | `count`, `totalTime`, `totalOfSquares`, `max` (seconds; recorded as whole nanoseconds, negatives ignored) | add, max |
//! | `d` | distribution summary | `count`, `totalAmount`, `totalOfSquares`, `max` (negatives ignored) | add, max |
//! | `T` | percentile timer | as `t`, plus `statistic=percentile,percentile=T00XX` bucket counts | add |
//! | `D` | percentile distribution summary | as `d` on the value truncated to an integer, plus `percentile=D00XX` bucket counts | add |
//! | `A` | age gauge (value: epoch seconds of the last success, `0` for now) | `statistic=gauge`: seconds since then, every step from the first line on | max |
//! | `C` | monotonic counter | `statistic=count`: the increase since the previous step (nothing at the first sample or when it went down) | add |
//! | `U` | monotonic counter of `u64` | as `C`, wrapping around `u64::MAX` | add |
//! | `X` | monotonic counter sampled at a time (`X,EPOCH_MS:`) | `statistic=count`: the increase per second between the last two samples | add |
//!
//! Names, keys and values are sanitised as spectatord does: every byte outside
//! `-._A-Za-z0-9~^` becomes `_`. A line that does not parse (no name, no value, an unknown type,
//! a gauge with a TTL ≤ 0, ...) is counted in [`parse_errors`](SpectatordListener::parse_errors)
//! and skipped; characters after a valid value are ignored, as spectatord does.
//!
//! What the stand-in leaves out: spectatord's common tags (`nf.app`, ... from the host), its
//! validation and length limits, and the repetition of a gauge across steps: spectatord keeps
//! reporting a gauge's last value for its TTL (15 minutes by default), while [`take_step`]
//! reports gauges set by the step's own lines (a client that aggregates, like this crate,
//! sends each step's gauges anyway). Age gauges, monotonic counters and their samples are kept
//! across steps, as spectatord keeps them.
//!
//! ```
//! use spectator::receiver::spectatord::SpectatordListener;
//! use std::time::Duration;
//!
//! let listener = SpectatordListener::bind_udp("127.0.0.1:0").unwrap();
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//! let addr = listener.location().trim_start_matches("udp://").to_string();
//! socket.send_to(b"c:server.numRequests,status=200:2\nc:server.numRequests,status=200:3", &addr).unwrap();
//! assert!(listener.wait_for_lines(2, Duration::from_secs(5)));
//! let step = listener.take_step();
//! assert_eq!(step.len(), 1);
//! assert_eq!(step[0].tags["statistic"], "count");
//! assert_eq!((step[0].op, step[0].value), (0, 5.0));
//! ```
//!
//! [`take_step`]: SpectatordListener::take_step

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{ReceivedMeasurement, TARGET};
use crate::meter::percentile_buckets;
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

/// C's `strtoll` on a prefix: `(value, bytes used)`; `(0, 0)` when no digits.
fn strtoll(s: &[u8]) -> (i64, usize) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
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
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
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

/// An id: the tags including `name`.
type Id = BTreeMap<String, String>;

/// Count, totals and max of a timer or summary within a step.
#[derive(Debug, Default, Clone)]
struct Dist {
    count: u64,
    total: f64,
    total_sq: f64,
    max: f64,
    /// Percentile bucket counts (percentile meters only).
    buckets: BTreeMap<usize, u64>,
}

impl Dist {
    fn record(&mut self, v: f64) {
        self.count += 1;
        self.total += v;
        self.total_sq += v * v;
        if self.count == 1 || v > self.max {
            self.max = v;
        }
    }
}

/// A monotonic source: the last value seen and the value at the previous step.
#[derive(Debug, Default, Clone, Copy)]
struct Mono<T> {
    current: Option<T>,
    previous: Option<T>,
}

/// The last sample of an `X` source (timestamp in ms, value) and the rate per second since the
/// sample before, until measured.
#[derive(Debug, Default, Clone, Copy)]
struct Sampled {
    last: Option<(i64, f64)>,
    rate: Option<f64>,
}

/// Aggregates parsed lines per step as spectatord's meters do; what [`SpectatordListener`]
/// runs on what it receives, usable on its own (no sockets) too.
///
/// ```
/// use spectator::receiver::spectatord::LineAggregator;
/// let mut agg = LineAggregator::default();
/// agg.ingest_datagram(b"t:req.latency:0.25\nt:req.latency:0.75\nnot a line");
/// assert_eq!(agg.parse_errors(), 1);
/// let step = agg.take_step();
/// let stat = |s: &str| step.iter().find(|m| m.tags["statistic"] == s).unwrap().value;
/// assert_eq!((stat("count"), stat("totalTime"), stat("max")), (2.0, 1.0, 0.75));
/// ```
#[derive(Debug, Default)]
pub struct LineAggregator {
    counters: BTreeMap<Id, f64>,
    gauges: BTreeMap<Id, f64>,
    max_gauges: BTreeMap<Id, f64>,
    timers: BTreeMap<Id, Dist>,
    summaries: BTreeMap<Id, Dist>,
    percentile_timers: BTreeMap<Id, Dist>,
    percentile_summaries: BTreeMap<Id, Dist>,
    /// Age gauges: the last success in nanoseconds since the epoch; never forgotten.
    age_gauges: BTreeMap<Id, i64>,
    monotonic: BTreeMap<Id, Mono<f64>>,
    monotonic_u64: BTreeMap<Id, Mono<u64>>,
    sampled: BTreeMap<Id, Sampled>,
    parsed: u64,
    errors: u64,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The nanoseconds spectatord records for `seconds`: `int64(seconds * 1e9)` (saturating).
fn to_nanos(seconds: f64) -> i64 {
    // `as` saturates and maps NaN to 0, where C++ would be undefined.
    (seconds * 1e9) as i64
}

impl LineAggregator {
    /// Lines parsed and aggregated so far.
    pub fn parsed_lines(&self) -> u64 {
        self.parsed
    }

    /// Lines skipped because they did not parse.
    pub fn parse_errors(&self) -> u64 {
        self.errors
    }

    /// Splits a datagram into lines as spectatord does (at `\n`, skipping empty lines,
    /// stopping at a NUL byte) and ingests each; returns the lines' errors.
    pub fn ingest_datagram(&mut self, datagram: &[u8]) -> Vec<ParseError> {
        let end = datagram
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(datagram.len());
        let mut errors = Vec::new();
        for line in datagram[..end].split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            if let Err(e) = self.ingest_bytes(line) {
                errors.push(e);
            }
        }
        errors
    }

    /// Parses and aggregates one line.
    pub fn ingest_line(&mut self, line: &str) -> Result<(), ParseError> {
        self.ingest_bytes(line.as_bytes())
    }

    fn ingest_bytes(&mut self, line: &[u8]) -> Result<(), ParseError> {
        match parse_bytes(line) {
            Ok(parsed) => {
                self.parsed += 1;
                self.ingest(parsed);
                Ok(())
            }
            Err(e) => {
                self.errors += 1;
                Err(e)
            }
        }
    }

    /// Aggregates one parsed line.
    pub fn ingest(&mut self, line: ParsedLine) {
        let mut id = line.tags;
        id.insert("name".to_string(), line.name);
        let v = line.value;
        match line.kind {
            LineType::Counter => {
                let c = self.counters.entry(id).or_default();
                if v > 0.0 {
                    *c += v;
                }
            }
            LineType::Gauge => {
                self.gauges.insert(id, v);
            }
            LineType::MaxGauge => {
                let g = self.max_gauges.entry(id).or_insert(f64::NAN);
                if !v.is_nan() && (g.is_nan() || v > *g) {
                    *g = v;
                }
            }
            LineType::Timer | LineType::PercentileTimer => {
                let ns = to_nanos(v);
                if ns < 0 {
                    return;
                }
                let percentile = line.kind == LineType::PercentileTimer;
                let map = if percentile {
                    &mut self.percentile_timers
                } else {
                    &mut self.timers
                };
                let d = map.entry(id).or_default();
                d.record(ns as f64);
                if percentile {
                    // spectatord's percentile timers range from 1 ns to 24 h.
                    let clamped = ns.clamp(1, 24 * 3600 * 1_000_000_000);
                    *d.buckets
                        .entry(percentile_buckets::index_of(clamped as u64))
                        .or_default() += 1;
                }
            }
            LineType::DistributionSummary => {
                if v >= 0.0 {
                    self.summaries.entry(id).or_default().record(v);
                }
            }
            LineType::PercentileDistributionSummary => {
                // Recorded as a 64-bit integer.
                let n = v as i64;
                if n >= 0 {
                    let d = self.percentile_summaries.entry(id).or_default();
                    d.record(n as f64);
                    *d.buckets
                        .entry(percentile_buckets::index_of(n as u64))
                        .or_default() += 1;
                }
            }
            LineType::AgeGauge => {
                let last = if v == 0.0 { now_nanos() } else { to_nanos(v) };
                self.age_gauges.insert(id, last);
            }
            LineType::MonotonicCounter => {
                self.monotonic.entry(id).or_default().current = Some(v);
            }
            LineType::MonotonicCounterUint => {
                self.monotonic_u64.entry(id).or_default().current = line.u64_value;
            }
            LineType::MonotonicSampled => {
                // Without a timestamp spectatord takes the line and records nothing.
                let ts = line.option;
                if ts <= 0 {
                    return;
                }
                let s = self.sampled.entry(id).or_default();
                if let Some((prev_ts, prev_v)) = s.last {
                    if ts > prev_ts && v >= prev_v {
                        let secs = (ts - prev_ts) as f64 / 1000.0;
                        s.rate = Some((v - prev_v) / secs);
                    }
                }
                s.last = Some((ts, v));
            }
        }
    }

    /// What spectatord would forward to Atlas for the lines ingested since the previous call,
    /// sorted by tags; per-step state is reset (see the module docs for what carries over).
    pub fn take_step(&mut self) -> Vec<ReceivedMeasurement> {
        let mut out = Vec::new();
        let with_default_stat = |id: &Id, stat: &str| {
            let mut tags = id.clone();
            tags.entry("statistic".to_string())
                .or_insert_with(|| stat.to_string());
            tags
        };
        let with_stat = |id: &Id, stat: &str| {
            let mut tags = id.clone();
            tags.insert("statistic".to_string(), stat.to_string());
            tags
        };
        let add = |tags, value| ReceivedMeasurement { tags, op: 0, value };
        let max = |tags, value| ReceivedMeasurement {
            tags,
            op: 10,
            value,
        };
        for (id, sum) in std::mem::take(&mut self.counters) {
            if sum > 0.0 {
                out.push(add(with_default_stat(&id, "count"), sum));
            }
        }
        for (id, v) in std::mem::take(&mut self.gauges) {
            if !v.is_nan() {
                out.push(max(with_default_stat(&id, "gauge"), v));
            }
        }
        for (id, v) in std::mem::take(&mut self.max_gauges) {
            if !v.is_nan() {
                out.push(max(with_stat(&id, "max"), v));
            }
        }
        let dists = [
            (std::mem::take(&mut self.timers), "totalTime", 1e9, ""),
            (std::mem::take(&mut self.summaries), "totalAmount", 1.0, ""),
            (
                std::mem::take(&mut self.percentile_timers),
                "totalTime",
                1e9,
                "T",
            ),
            (
                std::mem::take(&mut self.percentile_summaries),
                "totalAmount",
                1.0,
                "D",
            ),
        ];
        for (map, total_stat, scale, prefix) in dists {
            for (id, d) in map {
                if d.count == 0 {
                    continue;
                }
                out.push(add(with_stat(&id, "count"), d.count as f64));
                out.push(add(with_stat(&id, total_stat), d.total / scale));
                out.push(add(
                    with_stat(&id, "totalOfSquares"),
                    d.total_sq / (scale * scale),
                ));
                out.push(max(with_stat(&id, "max"), d.max / scale));
                for (bucket, n) in d.buckets {
                    let mut tags = with_stat(&id, "percentile");
                    tags.insert("percentile".to_string(), format!("{prefix}{bucket:04X}"));
                    out.push(add(tags, n as f64));
                }
            }
        }
        let now = now_nanos();
        for (id, last) in &self.age_gauges {
            let age = now.saturating_sub(*last) as f64 / 1e9;
            out.push(max(with_default_stat(id, "gauge"), age));
        }
        for (id, m) in &mut self.monotonic {
            if let (Some(cur), Some(prev)) = (m.current, m.previous) {
                let delta = cur - prev;
                if delta > 0.0 {
                    out.push(add(with_default_stat(id, "count"), delta));
                }
            }
            m.previous = m.current;
        }
        for (id, m) in &mut self.monotonic_u64 {
            if let (Some(cur), Some(prev)) = (m.current, m.previous) {
                let delta = cur.wrapping_sub(prev);
                if delta > 0 {
                    out.push(add(with_default_stat(id, "count"), delta as f64));
                }
            }
            m.previous = m.current;
        }
        for (id, s) in &mut self.sampled {
            if let Some(rate) = s.rate.take() {
                if rate > 0.0 {
                    out.push(add(with_default_stat(id, "count"), rate));
                }
            }
        }
        out.sort_by(|a, b| a.tags.cmp(&b.tags));
        out
    }
}

/// What the listener threads share.
struct Inner {
    state: Mutex<ListenerState>,
    arrived: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct ListenerState {
    lines: Vec<String>,
    sizes: Vec<usize>,
    aggregator: LineAggregator,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, ListenerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn datagram(&self, data: &[u8]) {
        let errors = {
            let mut st = self.lock();
            st.sizes.push(data.len());
            let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
            for line in data[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                st.lines.push(String::from_utf8_lossy(line).into_owned());
            }
            st.aggregator.ingest_datagram(data)
        };
        self.arrived.notify_all();
        for e in errors {
            tracing::debug!(target: TARGET, "spectatord line skipped: {e}");
        }
    }
}

/// How long a receiving thread blocks before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Receive buffer: the largest UDP datagram, with room to spare for unix ones.
const MAX_DATAGRAM: usize = 256 * 1024;

enum Socket {
    Udp(std::net::UdpSocket),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixDatagram),
}

impl Socket {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Udp(s) => s.recv(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.recv(buf),
        }
    }
}

/// A spectatord stand-in on one socket: receives protocol lines and aggregates them per step
/// (see the [module docs](self)). Stops, and removes its unix socket file, when dropped.
pub struct SpectatordListener {
    inner: Arc<Inner>,
    location: String,
    unix_path: Option<PathBuf>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SpectatordListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectatordListener")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SpectatordListener {
    /// Listens on a UDP address, e.g. `127.0.0.1:1234` (port 0 picks a free one).
    pub fn bind_udp(addr: &str) -> io::Result<SpectatordListener> {
        let socket = std::net::UdpSocket::bind(addr)?;
        let location = format!("udp://{}", socket.local_addr()?);
        socket.set_read_timeout(Some(POLL))?;
        SpectatordListener::spawn(Socket::Udp(socket), location, None)
    }

    /// Listens on a unix datagram socket at `path`, creating its directory if needed and
    /// replacing a socket already there (as spectatord does; any other kind of file is left
    /// alone and is an error).
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<SpectatordListener> {
        use std::os::unix::fs::FileTypeExt;
        let path = std::path::absolute(path.as_ref())?;
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_socket() {
                std::fs::remove_file(&path)?;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let socket = std::os::unix::net::UnixDatagram::bind(&path)?;
        socket.set_read_timeout(Some(POLL))?;
        let location = format!("unix://{}", path.display());
        SpectatordListener::spawn(Socket::Unix(socket), location, Some(path))
    }

    /// Unix datagram sockets exist on unix only.
    #[cfg(not(unix))]
    pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<SpectatordListener> {
        let _ = path;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix datagram sockets need a unix platform",
        ))
    }

    fn spawn(
        socket: Socket,
        location: String,
        unix_path: Option<PathBuf>,
    ) -> io::Result<SpectatordListener> {
        let inner = Arc::new(Inner {
            state: Mutex::new(ListenerState::default()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let shared = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("spectatord-listener".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !shared.stop.load(Ordering::Relaxed) {
                    match socket.recv(&mut buf) {
                        Ok(n) => shared.datagram(&buf[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            tracing::warn!(target: TARGET, "spectatord listener: {e}");
                            std::thread::sleep(POLL);
                        }
                    }
                }
            })?;
        tracing::debug!(target: TARGET, %location, "spectatord listener bound");
        Ok(SpectatordListener {
            inner,
            location,
            unix_path,
            thread: Some(thread),
        })
    }

    /// Where a client sends to, in the form of an output location:
    /// `udp://127.0.0.1:PORT` or `unix:///path`.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// Every line received so far, in arrival order (parsed or not).
    pub fn lines(&self) -> Vec<String> {
        self.inner.lock().lines.clone()
    }

    /// Every line received so far, forgetting them (a long-running listener calls it to keep
    /// its memory bounded).
    pub fn take_lines(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().lines)
    }

    /// The size of every datagram received so far, in bytes.
    pub fn datagram_sizes(&self) -> Vec<usize> {
        self.inner.lock().sizes.clone()
    }

    /// Lines skipped because they did not parse.
    pub fn parse_errors(&self) -> u64 {
        self.inner.lock().aggregator.parse_errors()
    }

    /// Lines parsed and aggregated so far.
    pub fn parsed_lines(&self) -> u64 {
        self.inner.lock().aggregator.parsed_lines()
    }

    /// Blocks until at least `n` lines have been received (since the start, or since the last
    /// [`take_lines`](SpectatordListener::take_lines)) or `timeout` passed; says which.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.inner.lock();
        while st.lines.len() < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            st = self
                .inner
                .arrived
                .wait_timeout(st, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// What spectatord would forward to Atlas for the lines received since the previous call
    /// (see [`LineAggregator::take_step`]).
    pub fn take_step(&self) -> Vec<ReceivedMeasurement> {
        self.inner.lock().aggregator.take_step()
    }
}

impl Drop for SpectatordListener {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(m: &ReceivedMeasurement) -> Vec<(&str, &str)> {
        m.tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn step(lines: &[&str]) -> Vec<ReceivedMeasurement> {
        let mut agg = LineAggregator::default();
        for l in lines {
            agg.ingest_line(l).unwrap();
        }
        agg.take_step()
    }

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

    #[test]
    fn lines_of_spectator_py_parse() {
        let text = include_str!("../../tests/data/spectator-py-1.2.1-lines.txt");
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(lines.len() > 20);
        let mut agg = LineAggregator::default();
        for l in &lines {
            let parsed = parse_line(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert!(parsed.ignored.is_none(), "{l}");
            agg.ingest(parsed);
        }
        let ms = agg.take_step();
        let find = |name: &str, stat: &str| {
            ms.iter()
                .find(|m| m.name() == name && m.tags["statistic"] == stat)
                .unwrap_or_else(|| panic!("{name} {stat} in {ms:?}"))
        };
        let reqs = find("server.numRequests", "count");
        assert_eq!((reqs.op, reqs.value), (0, 3.5));
        assert_eq!(reqs.tags["method"], "GET");
        let bad = find("bad_name", "count");
        assert_eq!(bad.tags["key_with_space"], "v_lue_x");
        assert_eq!(bad.tags["a_b"], "c_d_e");
        // The statistic tag on a counter line is kept (WithDefaultStat).
        assert_eq!(find("with.stat", "totalTime").value, 0.25);
        // The gauge's last line was NaN: it stops, nothing is sent.
        assert!(ms.iter().all(|m| m.name() != "queue.size"));
        assert_eq!(find("ttl.gauge", "gauge").value, 1.5e-7);
        assert_eq!(find("max.gauge", "max").op, 10);
        assert_eq!(find("req.latency", "count").value, 2.0);
        assert_eq!(find("req.latency", "totalTime").value, 0.042000001);
        assert_eq!(find("req.latency", "max").value, 0.042);
        assert_eq!(find("resp.size", "totalAmount").value, 1024.0);
        assert_eq!(find("pct.latency", "count").value, 1.0);
        let bucket = find("pct.latency", "percentile");
        assert_eq!(
            bucket.tags["percentile"],
            format!("T{:04X}", percentile_buckets::index_of(500_000_000))
        );
        assert_eq!(
            find("pct.size", "percentile").tags["percentile"],
            format!("D{:04X}", percentile_buckets::index_of(3000))
        );
        assert_eq!(find("big.value", "count").value, 1e300);
        assert_eq!(find("neg.gauge", "gauge").value, 0.0);
        assert_eq!(find("inf.gauge", "gauge").value, f64::INFINITY);
        // Set just now: an age of about zero seconds.
        assert!(find("age.gauge", "gauge").value < 60.0);
        // Monotonic counters report nothing at their first step.
        assert!(ms.iter().all(|m| !m.name().starts_with("mono.")));
    }

    #[test]
    fn counters_gauges_and_max_gauges_as_spectatord() {
        let ms = step(&[
            "c:c1:1",
            "c:c1:2",
            "c:c1:-5",
            "c:c1:nan",
            "c:zero:0",
            "g:g1:1",
            "g:g1:3",
            "g:g1:2",
            "m:m1:1",
            "m:m1:7",
            "m:m1:nan",
            "m:m1:3",
            "m:m2,statistic=gauge:4",
        ]);
        let got: Vec<(Vec<(&str, &str)>, u64, f64)> =
            ms.iter().map(|m| (tags(m), m.op, m.value)).collect();
        assert_eq!(
            got,
            vec![
                (vec![("name", "c1"), ("statistic", "count")], 0, 3.0),
                (vec![("name", "g1"), ("statistic", "gauge")], 10, 2.0),
                (vec![("name", "m1"), ("statistic", "max")], 10, 7.0),
                (vec![("name", "m2"), ("statistic", "max")], 10, 4.0),
            ]
        );
    }

    #[test]
    fn steps_reset_counters_and_keep_monotonic_bases() {
        let mut agg = LineAggregator::default();
        agg.ingest_line("C:bytes:100").unwrap();
        agg.ingest_line("U:u:18446744073709551615").unwrap();
        agg.ingest_line("c:n:1").unwrap();
        assert_eq!(agg.take_step().len(), 1);
        assert!(agg.take_step().is_empty(), "counters reset per step");
        agg.ingest_line("C:bytes:130").unwrap();
        agg.ingest_line("C:bytes:150").unwrap();
        agg.ingest_line("U:u:4").unwrap();
        let ms = agg.take_step();
        assert_eq!(ms.len(), 2);
        assert_eq!((ms[0].name(), ms[0].value), ("bytes", 50.0));
        assert_eq!((ms[1].name(), ms[1].value), ("u", 5.0), "wraps around");
        // Going down: nothing, and the new value is the base.
        agg.ingest_line("C:bytes:10").unwrap();
        assert!(agg.take_step().is_empty());
        agg.ingest_line("C:bytes:15").unwrap();
        assert_eq!(agg.take_step()[0].value, 5.0);
    }

    #[test]
    fn sampled_sources_report_a_rate() {
        let mut agg = LineAggregator::default();
        agg.ingest_line("X,1000:src:42").unwrap();
        assert!(agg.take_step().is_empty());
        agg.ingest_line("X,3000:src:142").unwrap();
        let ms = agg.take_step();
        assert_eq!(
            (ms[0].tags["statistic"].as_str(), ms[0].value),
            ("count", 50.0)
        );
        assert!(agg.take_step().is_empty());
    }

    #[test]
    fn timers_and_summaries_as_spectatord() {
        let ms = step(&[
            "t:t1:0.5",
            "t:t1:1.5",
            "t:t1:-1",
            "d:d1,statistic=percentile:10",
            "d:d1,statistic=percentile:30",
            "d:d1,statistic=percentile:-3",
            "D:d2:2.9",
            "T:t2:0",
        ]);
        let got: Vec<(String, String, u64, f64)> = ms
            .iter()
            .map(|m| {
                (
                    m.name().to_string(),
                    format!(
                        "{}{}",
                        m.tags["statistic"],
                        m.tags.get("percentile").map_or("", String::as_str)
                    ),
                    m.op,
                    m.value,
                )
            })
            .collect();
        let want = |n: &str, s: &str, op, v| (n.to_string(), s.to_string(), op, v);
        assert_eq!(
            got,
            vec![
                want("d1", "count", 0, 2.0),
                want("d1", "max", 10, 30.0),
                want("d1", "totalAmount", 0, 40.0),
                want("d1", "totalOfSquares", 0, 1000.0),
                // `percentile` sorts before `statistic`.
                want("d2", "percentileD0002", 0, 1.0),
                want("d2", "count", 0, 1.0),
                want("d2", "max", 10, 2.0),
                want("d2", "totalAmount", 0, 2.0),
                want("d2", "totalOfSquares", 0, 4.0),
                want("t1", "count", 0, 2.0),
                want("t1", "max", 10, 1.5),
                want("t1", "totalOfSquares", 0, 2.5),
                want("t1", "totalTime", 0, 2.0),
                want("t2", "percentileT0001", 0, 1.0),
                want("t2", "count", 0, 1.0),
                want("t2", "max", 10, 0.0),
                want("t2", "totalOfSquares", 0, 0.0),
                want("t2", "totalTime", 0, 0.0),
            ]
        );
    }

    #[test]
    fn datagrams_split_into_lines() {
        let mut agg = LineAggregator::default();
        let errors = agg.ingest_datagram(b"c:a:1\n\n\nc:a:2\nbogus\nc:a:3\0c:a:100");
        assert_eq!(errors.len(), 1);
        assert_eq!((agg.parsed_lines(), agg.parse_errors()), (3, 1));
        assert_eq!(agg.take_step()[0].value, 6.0);
    }

    #[test]
    fn age_gauges_keep_reporting() {
        let mut agg = LineAggregator::default();
        let ten_s_ago = now_nanos() / 1_000_000_000 - 10;
        agg.ingest_line(&format!("A:age:{ten_s_ago}")).unwrap();
        for _ in 0..2 {
            let ms = agg.take_step();
            assert_eq!(ms.len(), 1);
            assert!((9.0..60.0).contains(&ms[0].value), "{}", ms[0].value);
            assert_eq!((ms[0].op, ms[0].tags["statistic"].as_str()), (10, "gauge"));
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(line in "\\PC{0,40}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn parse_never_panics_on_protocol_shaped_input(
            line in "[cgmtdTDACUXq]{0,2}(,[-0-9x]{0,4})?:[a-z,=: ]{0,12}(:[-+0-9.eEnaif ]{0,8})?"
        ) {
            let mut agg = LineAggregator::default();
            let _ = agg.ingest_line(&line);
            let _ = agg.take_step();
        }
    }
}
