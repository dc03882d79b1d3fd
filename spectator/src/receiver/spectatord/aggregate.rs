//! Per-step aggregation of parsed lines as spectatord's meters do.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::parse::{parse_bytes, LineType, ParseError, ParsedLine};
use crate::meter::percentile_buckets;
use crate::receiver::ReceivedMeasurement;

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

/// Aggregates parsed lines per step as spectatord's meters do: what
/// [`SpectatordListener`](super::SpectatordListener) runs on what it receives, usable on its own
/// (no sockets) too.
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
    /// sorted by tags; per-step state is reset (the [module docs](super) say what carries over).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::spectatord::parse_line;

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
    fn lines_of_spectator_py_parse() {
        let text = include_str!("../../../tests/data/spectator-py-1.2.1-lines.txt");
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
        type Row<'a> = (Vec<(&'a str, &'a str)>, u64, f64);
        let got: Vec<Row> = ms.iter().map(|m| (tags(m), m.op, m.value)).collect();
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
        fn never_panics_on_protocol_shaped_input(
            line in "[cgmtdTDACUXq]{0,2}(,[-0-9x]{0,4})?:[a-z,=: ]{0,12}(:[-+0-9.eEnaif ]{0,8})?"
        ) {
            let mut agg = LineAggregator::default();
            let _ = agg.ingest_line(&line);
            let _ = agg.take_step();
        }
    }
}
