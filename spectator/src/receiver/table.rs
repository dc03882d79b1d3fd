//! [`LiveTable`]: what a receiver got, as a terminal table of series with rates and sparklines.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use super::{ReceivedMeasurement, ReceivedRequest};

/// Sparkline glyphs, lowest to highest.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// Widest name and tag columns; longer text is cut with `…`.
const NAME_WIDTH: usize = 36;
const TAGS_WIDTH: usize = 48;
/// Violation messages shown under the table.
const SHOWN_VIOLATIONS: usize = 3;

/// One series as the table keys it: the metric name and its other tags, sorted by key.
/// Percentile bucket series (`statistic=percentile`) are folded into one row per meter, so the
/// `percentile` tag is not part of the key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    name: String,
    tags: Vec<(String, String)>,
}

#[derive(Debug)]
struct Series {
    /// 0 (add: shown as a rate per second) or 10 (max: shown as it is).
    op: u64,
    /// One value per step, oldest first; `None` where the series was not reported.
    values: VecDeque<Option<f64>>,
    /// Distinct percentile buckets reported in the last step (0 for other series).
    buckets: usize,
}

/// What one step brought.
#[derive(Debug, Default)]
struct StepInfo {
    requests: usize,
    measurements: usize,
    rejected: usize,
    violations: Vec<String>,
}

/// A terminal view of what a receiver got: one row per series, with its value in the last
/// step and a sparkline of the steps before.
///
/// Feed it one step at a time with [`push_step`](LiveTable::push_step) (for example the result
/// of [`Aggregator::next_requests`](super::Aggregator::next_requests)), then
/// [`render`](LiveTable::render) or [`print`](LiveTable::print) it.
///
/// * `Add` values (counts, totals) are shown as a rate per second: the step's sum divided by
///   the step length, which is what Atlas graphs. `Max` values (gauges, maxima) are shown as
///   they are.
/// * The buckets of a percentile timer or summary are folded into one row (statistic
///   `percentile`) whose value is the rate of all its bucket counts.
/// * Tags with the same value on every series (the common tags) are shown once, above the
///   table.
/// * A series not reported for as many steps as the sparkline is long leaves the table.
///
/// ```
/// use spectator::receiver::{Aggregator, LiveTable};
/// use spectator::Registry;
/// use std::time::Duration;
///
/// let receiver = Aggregator::start().unwrap();
/// let registry = Registry::builder().uri(&receiver.uri()).build();
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
/// let mut table = LiveTable::new(Duration::from_secs(5));
///
/// let requests = registry.counter("server.numRequests", &[("status", "200")]);
/// for n in [10.0, 20.0, 5.0] {
///     requests.add(n);
///     rt.block_on(registry.publish());
///     table.push_step(&receiver.next_requests(Duration::from_secs(5)));
/// }
/// let text = table.render();
/// // 5 requests in a 5 s step: 1 per second.
/// let row = text.lines().find(|l| l.starts_with("server.numRequests")).unwrap();
/// assert!(row.contains("1.00/s"), "{text}");
/// assert!(row.contains("▅█▃"), "{text}");
/// assert!(table.names().contains("server.numRequests"));
/// ```
#[derive(Debug)]
pub struct LiveTable {
    step: Duration,
    history: usize,
    title: String,
    steps: u64,
    requests: u64,
    measurements: u64,
    rejected: u64,
    last: StepInfo,
    series: BTreeMap<Key, Series>,
    names: BTreeSet<String>,
}

impl LiveTable {
    /// A table for a publisher that sends every `step` (its `frequency`); Add values are
    /// divided by it.
    pub fn new(step: Duration) -> LiveTable {
        LiveTable {
            step: step.max(Duration::from_millis(1)),
            history: 24,
            title: "spectator receiver".to_string(),
            steps: 0,
            requests: 0,
            measurements: 0,
            rejected: 0,
            last: StepInfo::default(),
            series: BTreeMap::new(),
            names: BTreeSet::new(),
        }
    }

    /// Keeps `steps` values per series for the sparkline (default 24, at least 1).
    pub fn with_history(mut self, steps: usize) -> LiveTable {
        self.history = steps.max(1);
        self
    }

    /// Sets the first words of the header line (default `spectator receiver`).
    pub fn with_title(mut self, title: &str) -> LiveTable {
        self.title = title.to_string();
        self
    }

    /// Adds one step: every request received during it. An empty slice is a step in which
    /// nothing arrived.
    pub fn push_step(&mut self, requests: &[ReceivedRequest]) {
        let mut info = StepInfo {
            requests: requests.len(),
            ..StepInfo::default()
        };
        for r in requests {
            info.measurements += r.measurement_count();
            info.rejected += r.measurement_count().saturating_sub(r.accepted.len());
            if let Err(e) = &r.payload {
                info.violations.push(format!("undecodable request: {e}"));
            }
            info.violations.extend(r.violations.iter().cloned());
        }
        self.push(info, requests.iter().flat_map(|r| r.accepted.iter()));
    }

    /// Adds one step of measurements that did not come as requests, e.g. what a
    /// [`SpectatordListener`](super::spectatord::SpectatordListener) aggregated in the step;
    /// all of them are shown (none counts as rejected).
    ///
    /// ```
    /// use spectator::receiver::spectatord::LineAggregator;
    /// use spectator::receiver::LiveTable;
    /// use std::time::Duration;
    ///
    /// let mut lines = LineAggregator::default();
    /// lines.ingest_line("c:server.numRequests,status=200:10").unwrap();
    /// let mut table = LiveTable::new(Duration::from_secs(5));
    /// table.push_measurements(&lines.take_step());
    /// assert!(table.render().contains("2.00/s"));
    /// ```
    pub fn push_measurements(&mut self, measurements: &[ReceivedMeasurement]) {
        let info = StepInfo {
            measurements: measurements.len(),
            ..StepInfo::default()
        };
        self.push(info, measurements.iter());
    }

    fn push<'a>(
        &mut self,
        info: StepInfo,
        accepted: impl Iterator<Item = &'a ReceivedMeasurement>,
    ) {
        // (op, combined value, distinct buckets) per series for this step.
        let mut step: BTreeMap<Key, (u64, f64, BTreeSet<String>)> = BTreeMap::new();
        for m in accepted {
            let mut tags = m.tags.clone();
            let name = tags.remove("name").unwrap_or_default();
            let bucket = match tags.get("statistic").map(String::as_str) {
                Some("percentile") => tags.remove("percentile"),
                _ => None,
            };
            let key = Key {
                name,
                tags: tags.into_iter().collect(),
            };
            let entry = step.entry(key).or_insert((
                m.op,
                if m.op == 0 { 0.0 } else { f64::MIN },
                BTreeSet::new(),
            ));
            if m.op == 0 {
                entry.1 += m.value;
            } else {
                entry.1 = entry.1.max(m.value);
            }
            if let Some(b) = bucket {
                entry.2.insert(b);
            }
        }
        let secs = self.step.as_secs_f64();
        for series in self.series.values_mut() {
            series.values.push_back(None);
            series.buckets = 0;
        }
        for (key, (op, value, buckets)) in step {
            self.names.insert(key.name.clone());
            let shown = if op == 0 { value / secs } else { value };
            let series = self.series.entry(key).or_insert_with(|| Series {
                op,
                values: VecDeque::from([None]),
                buckets: 0,
            });
            series.op = op;
            series.buckets = buckets.len();
            if let Some(last) = series.values.back_mut() {
                *last = Some(shown);
            }
        }
        let history = self.history;
        self.series.retain(|_, s| {
            while s.values.len() > history {
                s.values.pop_front();
            }
            s.values.iter().any(Option::is_some)
        });
        self.steps += 1;
        self.requests += info.requests as u64;
        self.measurements += info.measurements as u64;
        self.rejected += info.rejected as u64;
        self.last = info;
    }

    /// Steps pushed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Requests received over all steps.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Measurements received over all steps (accepted or not).
    pub fn measurements(&self) -> u64 {
        self.measurements
    }

    /// Measurements the receiver rejected over all steps.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// Every metric name accepted so far, including series that have left the table.
    pub fn names(&self) -> &BTreeSet<String> {
        &self.names
    }

    /// One line for scripts and tests: `requests=N rejected=N names=a,b,...` over all steps.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        format!(
            "requests={} rejected={} names={}",
            self.requests,
            self.rejected,
            names.join(",")
        )
    }

    /// The table as text: a header line, the common tags, one row per series, and the first
    /// validation problems of the last step.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} · step {} · #{}: {} request{}, {} measurement{}, {} rejected",
            self.title,
            fmt_duration(self.step),
            self.steps,
            self.last.requests,
            plural(self.last.requests),
            self.last.measurements,
            plural(self.last.measurements),
            self.last.rejected,
        );
        let common = self.common_tags();
        if !common.is_empty() {
            let tags: Vec<String> = common.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(out, "common tags: {}", tags.join(","));
        }
        if self.series.is_empty() {
            let _ = writeln!(out, "(no series yet)");
        } else {
            let rows: Vec<[String; 5]> = self
                .series
                .iter()
                .map(|(key, s)| self.row(key, s, &common))
                .collect();
            let name_w = column_width(rows.iter().map(|r| &r[0]), "NAME", NAME_WIDTH);
            let tags_w = column_width(rows.iter().map(|r| &r[1]), "TAGS", TAGS_WIDTH);
            let stat_w = column_width(rows.iter().map(|r| &r[2]), "STATISTIC", usize::MAX);
            let value_w = column_width(rows.iter().map(|r| &r[3]), "VALUE", usize::MAX);
            let _ = writeln!(
                out,
                "{:<name_w$}  {:<tags_w$}  {:<stat_w$}  {:>value_w$}  LAST {} STEPS",
                "NAME", "TAGS", "STATISTIC", "VALUE", self.history
            );
            for [name, tags, stat, value, spark] in rows {
                let line = format!(
                    "{:<name_w$}  {:<tags_w$}  {stat:<stat_w$}  {value:>value_w$}  {spark}",
                    cut(&name, NAME_WIDTH),
                    cut(&tags, TAGS_WIDTH),
                );
                let _ = writeln!(out, "{}", line.trim_end());
            }
        }
        for v in self.last.violations.iter().take(SHOWN_VIOLATIONS) {
            let _ = writeln!(out, "! {v}");
        }
        if self.last.violations.len() > SHOWN_VIOLATIONS {
            let _ = writeln!(
                out,
                "! ... and {} more",
                self.last.violations.len() - SHOWN_VIOLATIONS
            );
        }
        out
    }

    /// Prints [`render`](LiveTable::render) to stdout. On a terminal the screen is cleared
    /// first, so the table is redrawn in place; otherwise (a pipe, a file) each step is printed
    /// after the one before.
    pub fn print(&self) {
        let mut stdout = std::io::stdout().lock();
        let clear = if stdout.is_terminal() {
            "\x1b[H\x1b[2J"
        } else {
            ""
        };
        let _ = write!(stdout, "{clear}{}", self.render());
        if clear.is_empty() {
            let _ = writeln!(stdout);
        }
        let _ = stdout.flush();
    }

    /// Tags with one value on every series (only when there are at least two series), except
    /// `statistic`, which says what each row is.
    fn common_tags(&self) -> Vec<(String, String)> {
        let mut keys = self.series.keys();
        let Some(first) = keys.next() else {
            return Vec::new();
        };
        if self.series.len() < 2 {
            return Vec::new();
        }
        let mut common = first.tags.clone();
        common.retain(|(k, _)| k != "statistic");
        for key in keys {
            common.retain(|t| key.tags.contains(t));
        }
        common
    }

    /// Name, other tags, statistic, value and sparkline of one series.
    fn row(&self, key: &Key, s: &Series, common: &[(String, String)]) -> [String; 5] {
        let mut stat = String::new();
        let tags: Vec<String> = key
            .tags
            .iter()
            .filter(|t| !common.contains(t))
            .filter(|(k, v)| {
                if k == "statistic" {
                    stat = v.clone();
                }
                k != "statistic"
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if s.buckets > 0 {
            let _ = write!(stat, " ({} bucket{})", s.buckets, plural(s.buckets));
        }
        let value = match s.values.back().copied().flatten() {
            None => "-".to_string(),
            Some(v) if s.op == 0 => format!("{}/s", fmt_number(v)),
            Some(v) => fmt_number(v),
        };
        [
            key.name.clone(),
            tags.join(","),
            stat,
            value,
            sparkline(&s.values, self.history),
        ]
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn column_width<'a>(cells: impl Iterator<Item = &'a String>, header: &str, cap: usize) -> usize {
    cells
        .map(|c| c.chars().count().min(cap))
        .chain([header.len()])
        .max()
        .unwrap_or(0)
}

/// `s` cut to `width` characters, ending in `…` when it was longer.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// One glyph per step, right-aligned in `width`; a space where nothing was reported. Scaled
/// from min(0, lowest) to max(0, highest) of the window.
fn sparkline(values: &VecDeque<Option<f64>>, width: usize) -> String {
    let finite = values.iter().flatten().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((0.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let mut out = " ".repeat(width.saturating_sub(values.len()));
    for v in values {
        out.push(match v {
            Some(v) if v.is_finite() && hi > lo => {
                let i = ((v - lo) / (hi - lo) * (BARS.len() - 1) as f64).round();
                BARS[(i as usize).min(BARS.len() - 1)]
            }
            Some(_) => BARS[0],
            None => ' ',
        });
    }
    out
}

/// Three significant digits, with k/M/G/T above a thousand.
fn fmt_number(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !v.is_finite() {
        return v.to_string();
    }
    let (scaled, suffix) = match v.abs() {
        a if a >= 1e12 => (v / 1e12, "T"),
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let a = scaled.abs();
    if a < 1e-3 {
        return format!("{v:.2e}");
    }
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // 0.0123 -> 4 decimals: three significant digits.
        (2 - a.log10().floor() as i32).clamp(2, 5) as usize
    };
    format!("{scaled:.decimals$}{suffix}")
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::{ReceivedMeasurement, ReceivedRequest};

    fn m(tags: &[(&str, &str)], op: u64, value: f64) -> ReceivedMeasurement {
        ReceivedMeasurement {
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            op,
            value,
        }
    }

    fn request(accepted: Vec<ReceivedMeasurement>, rejected: usize) -> ReceivedRequest {
        let mut all = accepted.clone();
        all.extend((0..rejected).map(|_| m(&[("bad key", "v")], 0, 1.0)));
        ReceivedRequest {
            method: "POST".into(),
            path: "/api/v4/update".into(),
            headers: Vec::new(),
            body_len: 0,
            payload: Ok(all),
            violations: (0..rejected)
                .map(|i| format!("measurement {i}: missing name"))
                .collect(),
            status: Some(200),
            accepted,
        }
    }

    fn row<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no row {start:?} in\n{text}"))
    }

    #[test]
    fn numbers() {
        assert_eq!(fmt_number(0.0), "0");
        assert_eq!(fmt_number(1.0), "1.00");
        assert_eq!(fmt_number(12.345), "12.3");
        assert_eq!(fmt_number(123.4), "123");
        assert_eq!(fmt_number(1234.0), "1.23k");
        assert_eq!(fmt_number(2.5e6), "2.50M");
        assert_eq!(fmt_number(0.0123), "0.0123");
        assert_eq!(fmt_number(0.5), "0.500");
        assert_eq!(fmt_number(-3.0), "-3.00");
        assert_eq!(fmt_number(1e-5), "1.00e-5");
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5 s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250 ms");
    }

    #[test]
    fn sparklines() {
        let v: VecDeque<Option<f64>> = [Some(0.0), Some(4.0), None, Some(8.0)].into();
        assert_eq!(sparkline(&v, 6), "  ▁▅ █");
        let flat: VecDeque<Option<f64>> = [Some(0.0), Some(0.0)].into();
        assert_eq!(sparkline(&flat, 2), "▁▁");
        let neg: VecDeque<Option<f64>> = [Some(-2.0), Some(2.0)].into();
        assert_eq!(sparkline(&neg, 2), "▁█");
    }

    #[test]
    fn rates_maxima_buckets_and_common_tags() {
        let mut t = LiveTable::new(Duration::from_secs(2)).with_title("test");
        let step = vec![
            request(
                vec![
                    m(
                        &[("name", "req"), ("statistic", "count"), ("nf.app", "a")],
                        0,
                        6.0,
                    ),
                    m(
                        &[("name", "lat"), ("statistic", "max"), ("nf.app", "a")],
                        10,
                        0.5,
                    ),
                    m(
                        &[
                            ("name", "lat"),
                            ("statistic", "percentile"),
                            ("percentile", "T0042"),
                            ("nf.app", "a"),
                        ],
                        0,
                        2.0,
                    ),
                ],
                0,
            ),
            request(
                vec![
                    m(
                        &[("name", "req"), ("statistic", "count"), ("nf.app", "a")],
                        0,
                        2.0,
                    ),
                    m(
                        &[("name", "lat"), ("statistic", "max"), ("nf.app", "a")],
                        10,
                        0.25,
                    ),
                    m(
                        &[
                            ("name", "lat"),
                            ("statistic", "percentile"),
                            ("percentile", "T0043"),
                            ("nf.app", "a"),
                        ],
                        0,
                        2.0,
                    ),
                ],
                1,
            ),
        ];
        t.push_step(&step);
        let text = t.render();
        assert!(
            text.starts_with("test · step 2 s · #1: 2 requests, 7 measurements, 1 rejected"),
            "{text}"
        );
        assert!(text.contains("common tags: nf.app=a"), "{text}");
        // Adds are summed over the step's requests and divided by the step; maxima combine.
        assert!(row(&text, "req ").contains("4.00/s"), "{text}");
        assert!(row(&text, "lat ").contains(" max "), "{text}");
        let max_row = text.lines().find(|l| l.contains(" max ")).unwrap();
        assert!(max_row.contains("0.500"), "{text}");
        let pct = text.lines().find(|l| l.contains(" percentile")).unwrap();
        assert!(
            pct.contains("(2 buckets)") && pct.contains("2.00/s"),
            "{text}"
        );
        assert!(text.contains("! measurement 0: missing name"), "{text}");
        assert_eq!(
            (t.steps(), t.requests(), t.measurements(), t.rejected()),
            (1, 2, 7, 1)
        );

        // A step without `req`: shown as "-", and the sparkline keeps a gap.
        t.push_step(&[request(
            vec![m(
                &[("name", "lat"), ("statistic", "max"), ("nf.app", "a")],
                10,
                1.0,
            )],
            0,
        )]);
        let text = t.render();
        let req = row(&text, "req ");
        assert!(req.contains(" - ") && req.ends_with('█'), "{text}");
        assert!(!text.contains('!'), "{text}");
        assert_eq!(
            t.names().iter().map(String::as_str).collect::<Vec<_>>(),
            ["lat", "req"]
        );
    }

    #[test]
    fn series_leave_after_history_steps() {
        let mut t = LiveTable::new(Duration::from_secs(1)).with_history(2);
        t.push_step(&[request(
            vec![m(&[("name", "gone"), ("statistic", "count")], 0, 1.0)],
            0,
        )]);
        t.push_step(&[]);
        assert!(t.render().contains("gone"));
        t.push_step(&[]);
        let text = t.render();
        assert!(text.contains("(no series yet)"), "{text}");
        assert!(
            text.contains("#3: 0 requests, 0 measurements, 0 rejected"),
            "{text}"
        );
        assert!(t.names().contains("gone"));
    }
}
