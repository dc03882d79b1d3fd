//! The spectatord output: each step's measurements as spectatord protocol lines, sent to its
//! UDP port or unix datagram socket, or written to a file, a stream or memory.
//!
//! # Lines
//!
//! One measurement per line, `TYPE:NAME[,KEY=VALUE]*:VALUE` (spectatord's `parse_line`,
//! <https://github.com/Netflix-Skunkworks/spectatord>), tags sorted by key, names, keys and
//! values sanitised to `-._A-Za-z0-9~^` as on the Atlas wire, values in the shortest decimal
//! that reads back to the same `f64`. The registry still aggregates in process (recording does
//! not change), and each step's *deltas* are sent so that what spectatord forwards to Atlas is
//! what the HTTP output would have sent:
//! - an `Add` measurement (counts, totals, percentile buckets) is a `c:` line carrying its
//!   `statistic` tag, which spectatord's counter keeps;
//! - a `Max` measurement whose `statistic` is `max` (timer and summary maxima, max gauges) is
//!   an `m:` line;
//! - any other `Max` measurement (gauges) is a `g:` line; a gauge set to NaN sends one
//!   `g:…:NaN` line, which makes spectatord stop reporting it;
//! - an age gauge that was set is an `A:` line instead of its `gauge` measurement, at every
//!   step: its value is the time of the last set in seconds since the epoch (spectatord reads
//!   `0` as "now", so a set at the epoch itself is sent as 0.001), and spectatord reports the
//!   age from it, growing on its own even once this process is gone. Sending it again at
//!   each step is idempotent, and survives a lost datagram or a restarted spectatord;
//! - a gauge with its own TTL is a `g,SECONDS:` line, SECONDS being what is left of its TTL
//!   (at least 1; spectatord itself keeps a gauge at least 5 s), so that spectatord stops
//!   reporting it when the registry does.
//!
//! Common tags: those set explicitly (builder, `SPECTATOR_COMMON_TAGS`) and `nf.container` /
//! `nf.process` go on every line; the other `nf.*` infrastructure tags are left to spectatord,
//! which adds its own (as spectator-py 1.x does).
//!
//! # Delivery
//!
//! Datagrams hold as many whole lines as fit in 60 000 bytes, joined by `\n`. Sockets are
//! non-blocking: a missing socket, a refused send or a full buffer drops the rest of the
//! step's lines (counted in `spectator.measurements{id=dropped,error=output}`), and the next
//! step opens the socket again. A line longer than a datagram is dropped alone. A forked
//! child opens its own socket on its first publish.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::config::{Config, Location};
use crate::id::{Id, PassThroughBuilder};
use crate::measurement::{Measurement, Op};
use crate::meter::LineHint;
use crate::rules::{is_infra_key, sanitize};
use crate::sync::lock;

use super::PublishReport;

/// Most bytes in one datagram.
pub(crate) const MAX_DATAGRAM: usize = 60_000;

/// Steps a cached line prefix survives without being used.
const PREFIX_STEPS: u64 = 64;

/// Infrastructure tags that go on every line even though spectatord adds the others.
const SENT_INFRA_TAGS: &[&str] = &["nf.container", "nf.process"];

/// Where the lines go.
#[derive(Debug)]
enum Sink {
    Udp(String),
    #[cfg(unix)]
    Unix(PathBuf),
    File(PathBuf),
    Stdout,
    Stderr,
    Memory(Mutex<Vec<String>>),
}

/// An open datagram socket.
enum Socket {
    Udp(std::net::UdpSocket),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixDatagram),
}

impl Socket {
    fn send(&self, datagram: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Udp(s) => s.send(datagram),
            #[cfg(unix)]
            Socket::Unix(s) => s.send(datagram),
        }
    }
}

/// The spectatord output of one registry.
pub(crate) struct LineOutput {
    sink: Sink,
    /// The common tags that go on every line, sanitised, sorted by key.
    common: Vec<(String, String)>,
    /// The socket and the process that opened it.
    socket: Mutex<Option<(u32, Socket)>>,
    /// Each id's line up to the value (`c:name,k=v:`), made once, and the step it was last
    /// used in.
    prefixes: Mutex<PrefixCache>,
}

#[derive(Default)]
struct PrefixCache {
    step: u64,
    pruned_at: u64,
    /// In the order of the step that last reordered them: a registry polls its meters in
    /// the same order at every step, so a step reads these front to back, where probing a
    /// table of 100k ids at random would miss the cache at every line.
    entries: Vec<Prefix>,
    /// Where each id is in `entries`, for the ids a step meets out of that order; built on
    /// the first such id after `entries` last moved.
    index: Option<HashMap<Id, usize, PassThroughBuilder>>,
}

struct Prefix {
    id: Id,
    text: Box<str>,
    /// The step it was last used in.
    used: u64,
    /// Its line's place in that step.
    pos: usize,
}

impl PrefixCache {
    /// Where `id` is in `entries`, trying `expected` (the one after the previous line's)
    /// first.
    fn find(&mut self, id: &Id, expected: usize) -> Option<usize> {
        if let Some(e) = self.entries.get(expected) {
            // `==` compares the hashes kept in the ids first: no read of their strings when
            // they differ, and a pointer compare when they share their allocation.
            if e.id == *id {
                return Some(expected);
            }
        }
        let entries = &self.entries;
        let index = self.index.get_or_insert_with(|| {
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.id.clone(), i))
                .collect()
        });
        index.get(id).copied()
    }
}

/// One step's lines in one buffer, each followed by `\n`: consecutive lines are then already
/// a datagram's bytes, so packing sends slices of it instead of copying every line again,
/// and the step makes no allocation per line.
#[derive(Default)]
struct Lines {
    buf: String,
    /// Where each line ends in `buf` (its `\n` excluded).
    ends: Vec<usize>,
    /// For datagrams: the longest line kept; a longer one is taken out as soon as it is
    /// written, so that the datagram it would have been in still fills up.
    longest: usize,
    /// Lines taken out for being longer than `longest`.
    too_long: usize,
}

impl Lines {
    fn with_capacity(lines: usize, longest: usize) -> Lines {
        Lines {
            buf: String::with_capacity(lines * 64),
            ends: Vec::with_capacity(lines),
            longest,
            too_long: 0,
        }
    }

    /// Ends the line written since the previous one.
    fn end_line(&mut self) {
        let start = self.start(self.ends.len());
        if self.buf.len() - start > self.longest {
            tracing::debug!(target: "spectator::registry", bytes = self.buf.len() - start,
                "line longer than a datagram; dropped");
            self.buf.truncate(start);
            self.too_long += 1;
            return;
        }
        self.ends.push(self.buf.len());
        self.buf.push('\n');
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Line `i`, without its `\n`.
    fn line(&self, i: usize) -> &str {
        &self.buf[self.start(i)..self.ends[i]]
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1] + 1
        }
    }
}

impl LineOutput {
    /// The output for a non-Atlas `location` (Atlas and `none` are not lines).
    pub(crate) fn new(location: Location, config: &Config) -> LineOutput {
        let sink = match location {
            Location::Udp(addr) => Sink::Udp(addr),
            #[cfg(unix)]
            Location::Unix(path) => Sink::Unix(path),
            #[cfg(not(unix))]
            Location::Unix(path) => {
                tracing::error!(target: "spectator::registry", ?path,
                    "unix sockets are not available on this platform; writing lines to stderr");
                Sink::Stderr
            }
            Location::File(path) => Sink::File(path),
            Location::Stdout => Sink::Stdout,
            Location::Stderr => Sink::Stderr,
            Location::Memory | Location::Atlas(_) | Location::None => {
                Sink::Memory(Mutex::default())
            }
        };
        let mut common: Vec<(String, String)> = Vec::new();
        for (k, v) in &config.common_tags {
            if is_infra_key(k) && !SENT_INFRA_TAGS.contains(&k.as_str()) {
                continue;
            }
            let (k, v) = (sanitize(k).into_owned(), sanitize(v).into_owned());
            if k == "name" {
                continue;
            }
            match common.iter_mut().find(|(ck, _)| *ck == k) {
                Some(slot) => slot.1 = v,
                None => common.push((k, v)),
            }
        }
        common.sort();
        LineOutput {
            sink,
            common,
            socket: Mutex::new(None),
            prefixes: Mutex::default(),
        }
    }

    /// Formats and sends one step's measurements.
    #[cfg(test)]
    pub(crate) fn send(&self, ms: Vec<Measurement>) -> PublishReport {
        self.send_step(ms, &[])
    }

    /// Formats and sends one step: `ms`, each as its type says unless `hints` (by id) say
    /// otherwise: an age gauge is an `A:` line instead of its measurement, a gauge with a TTL
    /// a `g,SECONDS:` line.
    pub(crate) fn send_step(
        &self,
        ms: Vec<Measurement>,
        hints: &[(Id, LineHint)],
    ) -> PublishReport {
        let mut report = PublishReport::default();
        let longest = match self.sink {
            Sink::Udp(_) => MAX_DATAGRAM,
            #[cfg(unix)]
            Sink::Unix(_) => MAX_DATAGRAM,
            _ => usize::MAX,
        };
        let mut lines = Lines::with_capacity(ms.len() + hints.len(), longest);
        let hinted: HashMap<&Id, LineHint> = hints.iter().map(|(id, h)| (id, *h)).collect();
        for (id, hint) in hints {
            if let LineHint::Age { since_ms } = hint {
                lines.buf.push_str(&self.prefix("A", id));
                // spectatord reads 0 as "now": the epoch itself goes as 1 ms after it.
                write_value(&mut lines.buf, (*since_ms).max(1) as f64 / 1000.0);
                lines.end_line();
            }
        }
        {
            let mut cache = lock(&self.prefixes);
            cache.step += 1;
            let step = cache.step;
            let (mut expected, mut misses) = (0usize, 0usize);
            for m in &ms {
                if !hinted.is_empty() {
                    match hinted.get(&m.id) {
                        None => {}
                        Some(LineHint::Age { .. }) => continue, // sent above
                        Some(LineHint::GaugeTtl { seconds }) => {
                            // Not cached: the TTL left changes at every step.
                            let kind = format!("{},{seconds}", line_type(m));
                            lines.buf.push_str(&self.prefix(&kind, &m.id));
                            write_value(&mut lines.buf, m.value);
                            lines.end_line();
                            continue;
                        }
                    }
                }
                let k = match cache.find(&m.id, expected) {
                    Some(k) => k,
                    None => {
                        let kind = line_type(m).to_string();
                        let text = self.prefix(&kind, &m.id).into_boxed_str();
                        let k = cache.entries.len();
                        if let Some(index) = &mut cache.index {
                            index.insert(m.id.clone(), k);
                        }
                        cache.entries.push(Prefix {
                            id: m.id.clone(),
                            text,
                            used: step,
                            pos: 0,
                        });
                        k
                    }
                };
                misses += usize::from(k != expected);
                expected = k + 1;
                let e = &mut cache.entries[k];
                e.used = step;
                e.pos = lines.len() + lines.too_long;
                lines.buf.push_str(&e.text);
                write_value(&mut lines.buf, m.value);
                lines.end_line();
            }
            if step - cache.pruned_at >= PREFIX_STEPS {
                cache.pruned_at = step;
                cache.entries.retain(|e| step - e.used < PREFIX_STEPS);
                cache.index = None;
            }
            // New ids go at the end, and meters come and go: once many lines were out of
            // order, put the entries back in this step's order (unused ones last).
            if misses * 16 > cache.entries.len() {
                for e in &mut cache.entries {
                    if e.used != step {
                        e.pos = usize::MAX;
                    }
                }
                cache.entries.sort_by_key(|e| e.pos);
                cache.index = None;
            }
        }
        match &self.sink {
            Sink::Memory(held) => {
                report.sent = lines.len();
                lock(held).extend((0..lines.len()).map(|i| lines.line(i).to_owned()));
            }
            Sink::Udp(_) => self.send_datagrams(&lines, &mut report),
            #[cfg(unix)]
            Sink::Unix(_) => self.send_datagrams(&lines, &mut report),
            Sink::File(path) => {
                let written = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .and_then(|mut f| f.write_all(lines.buf.as_bytes()));
                self.count_write(written, lines.len(), &mut report);
            }
            Sink::Stdout => {
                let written = io::stdout().lock().write_all(lines.buf.as_bytes());
                self.count_write(written, lines.len(), &mut report);
            }
            Sink::Stderr => {
                let written = io::stderr().lock().write_all(lines.buf.as_bytes());
                self.count_write(written, lines.len(), &mut report);
            }
        }
        report
    }

    fn count_write(&self, written: io::Result<()>, lines: usize, report: &mut PublishReport) {
        match written {
            Ok(()) => {
                report.sent += lines;
                report.batches += usize::from(lines > 0);
            }
            Err(e) => {
                report.dropped_output += lines;
                tracing::warn!(target: "spectator::registry", sink = ?self.sink, "cannot write lines: {e}");
            }
        }
    }

    /// Packs whole lines into datagrams of at most [`MAX_DATAGRAM`] bytes and sends them; on
    /// the first failure the rest of the step is dropped and the socket reopened next step.
    fn send_datagrams(&self, lines: &Lines, report: &mut PublishReport) {
        report.dropped_output += lines.too_long;
        if lines.is_empty() {
            return;
        }
        let mut slot = lock(&self.socket);
        let me = std::process::id();
        if !matches!(&*slot, Some((pid, _)) if *pid == me) {
            match self.open() {
                Ok(s) => *slot = Some((me, s)),
                Err(e) => {
                    *slot = None;
                    report.dropped_output += lines.len();
                    tracing::debug!(target: "spectator::registry", sink = ?self.sink,
                        "cannot open the spectatord socket: {e}");
                    return;
                }
            }
        }
        let Some((_, socket)) = slot.as_ref() else {
            return;
        };
        // A datagram is `lines.buf[from..to]`: `in_datagram` whole lines joined by their `\n`s.
        let mut failed: Option<io::Error> = None;
        let mut flush = |from: usize, to: usize, n: usize, report: &mut PublishReport| {
            if n == 0 {
                return;
            }
            if failed.is_none() {
                match socket.send(&lines.buf.as_bytes()[from..to]) {
                    Ok(_) => {
                        report.sent += n;
                        report.batches += 1;
                    }
                    Err(e) => failed = Some(e),
                }
            }
            if failed.is_some() {
                report.dropped_output += n;
            }
        };
        let (mut from, mut in_datagram) = (0usize, 0usize);
        for i in 0..lines.len() {
            // No line is longer than a datagram (`Lines::end_line`).
            let (start, end) = (lines.start(i), lines.ends[i]);
            if in_datagram > 0 && end - from > MAX_DATAGRAM {
                flush(from, start - 1, in_datagram, report);
                (from, in_datagram) = (start, 0);
            }
            in_datagram += 1;
        }
        if in_datagram > 0 {
            flush(from, lines.ends[lines.len() - 1], in_datagram, report);
        }
        if let Some(e) = failed {
            // Reopen next step: the socket may have been removed and created again.
            *slot = None;
            tracing::debug!(target: "spectator::registry", sink = ?self.sink,
                dropped = report.dropped_output, "spectatord send failed: {e}");
        }
    }

    fn open(&self) -> io::Result<Socket> {
        match &self.sink {
            Sink::Udp(addr) => {
                use std::net::ToSocketAddrs;
                let target = addr.to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{addr} resolves to nothing"),
                    )
                })?;
                let local = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let s = std::net::UdpSocket::bind(local)?;
                s.connect(target)?;
                s.set_nonblocking(true)?;
                Ok(Socket::Udp(s))
            }
            #[cfg(unix)]
            Sink::Unix(path) => {
                let s = std::os::unix::net::UnixDatagram::unbound()?;
                s.connect(path)?;
                s.set_nonblocking(true)?;
                Ok(Socket::Unix(s))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "not a socket output",
            )),
        }
    }

    /// `TYPE:NAME,K=V,…:` for `id`: its tags and the common ones, sorted by key, the id's
    /// value winning for a key in both.
    fn prefix(&self, kind: &str, id: &Id) -> String {
        let mut tags: Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> = id
            .tags()
            .filter(|(k, _)| *k != "name")
            .map(|(k, v)| (sanitize(k), sanitize(v)))
            .collect();
        for (k, v) in &self.common {
            if !tags.iter().any(|(tk, _)| tk == k) {
                tags.push((k.as_str().into(), v.as_str().into()));
            }
        }
        tags.sort();
        tags.dedup_by(|a, b| a.0 == b.0);
        let mut line = String::with_capacity(64);
        line.push_str(kind);
        line.push(':');
        line.push_str(&sanitize(id.name()));
        for (k, v) in &tags {
            let _ = write!(line, ",{k}={v}");
        }
        line.push(':');
        line
    }

    /// The lines a memory output holds, drained.
    pub(crate) fn take_written_lines(&self) -> Vec<String> {
        match &self.sink {
            Sink::Memory(held) => std::mem::take(&mut *lock(held)),
            _ => Vec::new(),
        }
    }
}

/// The line type of a measurement: `c` for Add, `m` for a `max` statistic, `g` otherwise.
fn line_type(m: &Measurement) -> char {
    match (m.op, m.id.tag("statistic")) {
        (Op::Add, _) => 'c',
        (Op::Max, Some("max")) => 'm',
        (Op::Max, _) => 'g',
    }
}

/// Appends `v` in the shortest form that reads back to the same `f64`: plain decimals for
/// ordinary magnitudes, exponent form for very large or small ones (`1e300`, `5e-324`), `NaN`.
pub(crate) fn write_value(out: &mut String, v: f64) {
    let a = v.abs();
    if v.is_nan() {
        out.push_str("NaN");
    } else if a < 1e16 && v.fract() == 0.0 && !(v == 0.0 && v.is_sign_negative()) {
        // Counts, the common case: integer formatting is several times cheaper than float's.
        // An integral `f64` below 1e16 converts to `i64` exactly.
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else if (1e-5..1e16).contains(&a) {
        // Not integral here, so ryu's form is plain too, with the same shortest digits.
        out.push_str(ryu::Buffer::new().format_finite(v));
    } else if a == 0.0 || a.is_infinite() {
        let _ = write!(out, "{v}");
    } else {
        let _ = write!(out, "{v:e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: f64) -> String {
        let mut s = String::new();
        write_value(&mut s, v);
        s
    }

    /// The formatting `write_value` had before its integer and ryu paths.
    fn value_by_fmt(v: f64) -> String {
        let a = v.abs();
        if v.is_nan() {
            "NaN".to_owned()
        } else if a == 0.0 || (1e-5..1e16).contains(&a) || a.is_infinite() {
            format!("{v}")
        } else {
            format!("{v:e}")
        }
    }

    #[test]
    fn fast_paths_write_what_fmt_writes() {
        let mut specials = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            1e-5,
            0.99999e-5,
            1e16,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            9_007_199_254_740_993.0,
            1e16 - 2.0,
            0.5,
            1e15 + 0.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        // A fixed xorshift walk over every exponent, sign and mantissa.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            specials.push(f64::from_bits(x));
            // And values near ordinary magnitudes, integral or not.
            specials
                .push((x % 10_000_000) as f64 / [1.0, 10.0, 1000.0, 3.0][(x >> 60) as usize % 4]);
        }
        for v in specials {
            let (ours, by_fmt) = (value(v), value_by_fmt(v));
            // Where the exact value lies halfway between two shortest decimals (`…562.25`
            // at a quarter's precision), ryu and fmt may break the tie differently: either
            // reads back to `v`.
            if ours != by_fmt {
                assert_eq!(ours.len(), by_fmt.len(), "{v:?}: {ours} vs {by_fmt}");
                assert_eq!(ours.parse::<f64>().unwrap(), v, "{v:?}: {ours}");
            }
        }
    }

    #[test]
    fn values_are_shortest_round_trip() {
        for (v, text) in [
            (1.0, "1"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (1e300, "1e300"),
            (5e-324, "5e-324"),
            (123456.789, "123456.789"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(value(v), text);
        }
        for v in [
            1.0 / 3.0,
            2e-7,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(value(v).parse::<f64>().unwrap(), v, "{v}");
        }
    }

    fn output(common: &[(&str, &str)]) -> LineOutput {
        let config = Config {
            common_tags: common
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Config::default()
        };
        LineOutput::new(Location::Memory, &config)
    }

    #[test]
    fn line_types_tags_and_sanitising() {
        let out = output(&[("nf.app", "www"), ("nf.process", "p 1"), ("zone", "a")]);
        let ms = vec![
            Measurement::new(
                Id::new("req count", &[("statistic", "count"), ("st@t", "ok")]),
                2.0,
            ),
            Measurement::new(Id::new("q", &[("statistic", "gauge"), ("zone", "b")]), 3.5),
            Measurement::new(Id::new("lat", &[("statistic", "max")]), 0.25),
            Measurement::new(Id::new("g", &[("statistic", "gauge")]), f64::NAN),
        ];
        let r = out.send(ms);
        assert_eq!((r.sent, r.dropped_output), (4, 0));
        assert_eq!(
            out.take_written_lines(),
            [
                "c:req_count,nf.process=p_1,st_t=ok,statistic=count,zone=a:2",
                "g:q,nf.process=p_1,statistic=gauge,zone=b:3.5",
                "m:lat,nf.process=p_1,statistic=max,zone=a:0.25",
                "g:g,nf.process=p_1,statistic=gauge,zone=a:NaN",
            ]
        );
        assert!(out.take_written_lines().is_empty());
    }

    #[test]
    fn prefixes_are_cached_per_id() {
        let out = output(&[]);
        let id = Id::new("a.b", &[("statistic", "count")]);
        out.send(vec![Measurement::new(id.clone(), 1.0)]);
        out.send(vec![Measurement::new(id, 2.0)]);
        assert_eq!(lock(&out.prefixes).entries.len(), 1);
        assert_eq!(
            out.take_written_lines(),
            ["c:a.b,statistic=count:1", "c:a.b,statistic=count:2"]
        );
    }

    /// Ids met in another order, new ones in between and missing ones all get their own
    /// prefix, whatever order the cache holds them in.
    #[test]
    fn prefixes_follow_any_order_of_ids() {
        let out = output(&[]);
        let id = |n: &str| Id::new(n, &[("statistic", "count")]);
        for (step, names) in [
            vec!["a", "b", "c", "d"],
            vec!["d", "a", "e", "c"],
            vec!["b", "e", "a"],
            vec!["a", "b", "c", "d", "e", "f"],
            vec!["f", "a"],
        ]
        .into_iter()
        .enumerate()
        {
            let ms = names
                .iter()
                .map(|n| Measurement::new(id(n), step as f64))
                .collect();
            out.send(ms);
            let expected: Vec<String> = names
                .iter()
                .map(|n| format!("c:{n},statistic=count:{step}"))
                .collect();
            assert_eq!(out.take_written_lines(), expected, "step {step}");
        }
        assert_eq!(lock(&out.prefixes).entries.len(), 6);
    }

    /// Datagrams are tight (the next datagram's first line would not have fit), keep the
    /// lines' order, and a line too long for any datagram is dropped alone mid-step.
    #[cfg(unix)]
    #[test]
    fn datagrams_are_full_slices_of_the_step() {
        let dir = std::env::temp_dir().join(format!("spectator-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pack.unix");
        let _ = std::fs::remove_file(&path);
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let out = LineOutput::new(Location::Unix(path.clone()), &Config::default());
        let long = "v".repeat(MAX_DATAGRAM);
        let mut ms = Vec::new();
        let mut expected = Vec::new();
        for i in 0..4_000usize {
            // Lines of varying length, so that datagrams end at different places.
            let pad = "p".repeat(i % 37);
            let id = Id::new("a", &[("i", &format!("{i}{pad}")), ("statistic", "count")]);
            expected.push(format!("c:a,i={i}{pad},statistic=count:{i}"));
            ms.push(Measurement::new(id, i as f64));
            if i == 1_234 {
                ms.push(Measurement::new(Id::new("long", &[("k", &long)]), 1.0));
            }
        }
        let r = out.send(ms);
        assert_eq!((r.sent, r.dropped_output), (4_000, 1), "{r:?}");
        let mut buf = vec![0u8; 65_536];
        let mut datagrams: Vec<String> = Vec::new();
        for _ in 0..r.batches {
            let n = sock.recv(&mut buf).unwrap();
            datagrams.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        let _ = std::fs::remove_file(&path);
        let got: Vec<&str> = datagrams.iter().flat_map(|d| d.split('\n')).collect();
        assert_eq!(got, expected);
        for pair in datagrams.windows(2) {
            let next = pair[1].split('\n').next().unwrap();
            assert!(pair[0].len() <= MAX_DATAGRAM);
            assert!(
                pair[0].len() + 1 + next.len() > MAX_DATAGRAM,
                "{}",
                pair[0].len()
            );
        }
    }

    /// `(type, name, sorted tags, value)` of a line, split as spectatord's `parse_line` does.
    fn parse(line: &str) -> (String, String, Vec<(String, String)>, f64) {
        let (kind, rest) = line.split_once(':').unwrap();
        let (id, value) = rest.rsplit_once(':').unwrap();
        let mut parts = id.split(',');
        let name = parts.next().unwrap().to_owned();
        let mut tags: Vec<(String, String)> = parts
            .map(|t| {
                let (k, v) = t.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect();
        tags.sort();
        (kind.to_owned(), name, tags, value.parse().unwrap())
    }

    /// The same ids and values as lines spectator-py 1.2.1's memory writer wrote
    /// (tests/data/gen_spectator_py_lines.py): same type, name and tags after sanitising,
    /// the same number. Where every tag key is already valid the lines are identical but for
    /// the number's spelling (Python writes `1.0`, `1e+300`, `nan`; these lines `1`, `1e300`,
    /// `NaN`: each the shortest that reads back to the same `f64`).
    #[test]
    fn lines_match_spectator_py_1_2_1() {
        let data: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/data/spectator_py_1_2_1_lines.json"
        ))
        .unwrap();
        let out = output(&[]);
        let cases = data["cases"].as_array().unwrap();
        for case in cases {
            let tags: Vec<(&str, &str)> = case["tags"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let value: f64 = match case["value"].as_str().unwrap() {
                "nan" => f64::NAN,
                v => v.parse().unwrap(),
            };
            let id = Id::new(case["name"].as_str().unwrap(), &tags);
            out.send(vec![Measurement::new(id, value)]);
        }
        let ours = out.take_written_lines();
        assert_eq!(ours.len(), cases.len());
        for (case, line) in cases.iter().zip(&ours) {
            let theirs = case["line"].as_str().unwrap();
            let (tk, tn, tt, tv) = parse(theirs);
            let (ok, on, ot, ov) = parse(line);
            assert_eq!((&ok, &on, &ot), (&tk, &tn, &tt), "{line} vs {theirs}");
            assert!(
                ov == tv || (ov.is_nan() && tv.is_nan()),
                "{line} vs {theirs}"
            );
            let keys_valid = case["tags"]
                .as_object()
                .unwrap()
                .keys()
                .all(|k| crate::rules::is_valid(k));
            if keys_valid {
                let prefix = |l: &str| l.rsplit_once(':').unwrap().0.to_owned();
                assert_eq!(prefix(line), prefix(theirs));
            }
        }
    }
}
