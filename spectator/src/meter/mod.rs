//! The seven Spectator meter types, and what each reports at a poll.
//!
//! Handles ([`Counter`], [`Timer`], ...) are cheap to clone (an `Arc` inside), `Send + Sync`,
//! and record with a few atomic operations: no mutex, no allocation, no lookup. The registry keeps the
//! same `Arc`s and turns them into [`Measurement`]s when polled.

pub(crate) mod atomic;
mod counter;
mod distribution_summary;
mod gauge;
mod max_gauge;
pub mod percentile_buckets;
mod percentile_distribution_summary;
mod percentile_timer;
mod stats;
mod timer;

pub use counter::Counter;
pub use distribution_summary::DistributionSummary;
pub use gauge::Gauge;
pub use max_gauge::MaxGauge;
pub use percentile_distribution_summary::PercentileDistributionSummary;
pub use percentile_timer::PercentileTimer;
pub use timer::{Stopwatch, Timer};

use crate::clock::Clock;
use crate::id::Id;
use crate::measurement::Measurement;
use std::sync::Arc;

/// The registry's view of a meter: the shared state behind every handle of one id.
#[derive(Clone)]
pub(crate) enum MeterCore {
    Counter(Arc<counter::CounterCore>),
    Timer(Arc<timer::TimerCore>),
    DistributionSummary(Arc<distribution_summary::SummaryCore>),
    Gauge(Arc<gauge::GaugeCore>),
    MaxGauge(Arc<max_gauge::MaxGaugeCore>),
    PercentileTimer(Arc<percentile_timer::PercentileTimerCore>),
    PercentileDistributionSummary(Arc<percentile_distribution_summary::PercentileSummaryCore>),
}

impl MeterCore {
    /// Owners of the shared state: 1 means only the registry holds it.
    pub(crate) fn strong_count(&self) -> usize {
        match self {
            MeterCore::Counter(c) => Arc::strong_count(c),
            MeterCore::Timer(c) => Arc::strong_count(c),
            MeterCore::DistributionSummary(c) => Arc::strong_count(c),
            MeterCore::Gauge(c) => Arc::strong_count(c),
            MeterCore::MaxGauge(c) => Arc::strong_count(c),
            MeterCore::PercentileTimer(c) => Arc::strong_count(c),
            MeterCore::PercentileDistributionSummary(c) => Arc::strong_count(c),
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            MeterCore::Counter(_) => Counter::KIND,
            MeterCore::Timer(_) => Timer::KIND,
            MeterCore::DistributionSummary(_) => DistributionSummary::KIND,
            MeterCore::Gauge(_) => Gauge::KIND,
            MeterCore::MaxGauge(_) => MaxGauge::KIND,
            MeterCore::PercentileTimer(_) => PercentileTimer::KIND,
            MeterCore::PercentileDistributionSummary(_) => PercentileDistributionSummary::KIND,
        }
    }

    /// Appends what this meter reports at a poll at wall time `now_ms`, taking the interval's
    /// deltas. `ids` are the ones [`MeterKind::stat_ids`] made for it. Returns the latest
    /// wall time the meter is known to have been updated at (0 if unknown), for expiry.
    pub(crate) fn measure(
        &self,
        ids: &[Id],
        now_ms: u64,
        ttl_ms: u64,
        out: &mut Vec<Measurement>,
    ) -> u64 {
        let active = match self {
            MeterCore::Counter(c) => push(out, &ids[0], c.take()),
            MeterCore::Timer(t) => {
                let taken = t.stats.take(|_| {});
                push_stats(out, ids, taken, NANOS)
            }
            MeterCore::DistributionSummary(s) => {
                let taken = s.stats.take(|_| {});
                push_stats(out, ids, taken, UNIT)
            }
            MeterCore::Gauge(g) => {
                if let Some(v) = g.value_at(now_ms, ttl_ms) {
                    push(out, &ids[0], v);
                }
                // A gauge's last update is its last set, whenever the poll happens.
                return g.set_at();
            }
            MeterCore::MaxGauge(g) => push(out, &ids[0], g.max.take()),
            MeterCore::PercentileTimer(t) => {
                let mut counts = [0u64; percentile_buckets::LENGTH];
                let taken = t.timer.stats.take(|b| b.take_into(&mut counts));
                let active = push_stats(out, ids, taken, NANOS);
                push_buckets(out, &ids[4], 'T', &counts);
                active
            }
            MeterCore::PercentileDistributionSummary(s) => {
                let mut counts = [0u64; percentile_buckets::LENGTH];
                let taken = s.summary.stats.take(|b| b.take_into(&mut counts));
                let active = push_stats(out, ids, taken, UNIT);
                push_buckets(out, &ids[4], 'D', &counts);
                active
            }
        };
        if active {
            now_ms
        } else {
            0
        }
    }
}

/// Unit conversions for timers (ns → s, ns² → s²) and summaries (none).
struct Scale {
    unit: f64,
    squared: f64,
}
const NANOS: Scale = Scale {
    unit: 1e-9,
    squared: 1e-18,
};
const UNIT: Scale = Scale {
    unit: 1.0,
    squared: 1.0,
};

/// Pushes `value` unless the rules say not to send it: never NaN or infinities, and never an
/// Add of 0 (nothing happened). Returns whether anything was pushed.
fn push(out: &mut Vec<Measurement>, id: &Id, value: f64) -> bool {
    let m = Measurement::new(id.clone(), value);
    if !value.is_finite() || (m.op == crate::Op::Add && value == 0.0) {
        return false;
    }
    out.push(m);
    true
}

fn push_stats(out: &mut Vec<Measurement>, ids: &[Id], t: stats::Taken, scale: Scale) -> bool {
    if t.count == 0 {
        return false; // idle: not even max
    }
    push(out, &ids[0], t.count as f64);
    push(out, &ids[1], t.total * scale.unit);
    push(out, &ids[2], t.total_sq * scale.squared);
    push(out, &ids[3], t.max * scale.unit);
    true
}

fn push_buckets(out: &mut Vec<Measurement>, base: &Id, prefix: char, counts: &[u64]) {
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 {
            let tag = format!("{prefix}{i:04X}");
            push(out, &base.with_tag("percentile", &tag), c as f64);
        }
    }
}

/// What the registry needs to know about each handle type. Sealed: only this crate's meters.
pub(crate) trait MeterKind: Sized {
    /// Name used in warnings.
    const KIND: &'static str;
    /// A handle on `core`, if it is of this kind.
    fn from_core(core: &MeterCore) -> Option<Self>;
    /// A new meter registered under an id: its handle and the registry's view of it.
    fn create(clock: &Arc<dyn Clock>) -> (Self, MeterCore);
    /// A meter that records into nothing the registry reports.
    fn detached(clock: &Arc<dyn Clock>) -> Self;
    /// The ids this meter reports under, computed once at registration.
    fn stat_ids(id: &Id) -> Box<[Id]>;
}

fn stats_ids(id: &Id, total: &str) -> Box<[Id]> {
    ["count", total, "totalOfSquares", "max"]
        .iter()
        .map(|s| id.with_stat(s))
        .collect()
}

fn percentile_ids(id: &Id, total: &str) -> Box<[Id]> {
    let mut ids = stats_ids(id, total).into_vec();
    ids.push(id.with_stat("percentile"));
    ids.into_boxed_slice()
}

macro_rules! meter_kind {
    ($handle:ident, $variant:ident, $kind:literal, |$clock:ident| $new_core:expr, |$id:ident| $ids:expr, |$c2:ident| $detached:expr) => {
        impl MeterKind for $handle {
            const KIND: &'static str = $kind;
            fn from_core(core: &MeterCore) -> Option<Self> {
                match core {
                    MeterCore::$variant(c) => Some($handle { core: c.clone() }),
                    _ => None,
                }
            }
            fn create($clock: &Arc<dyn Clock>) -> (Self, MeterCore) {
                let core = Arc::new($new_core);
                ($handle { core: core.clone() }, MeterCore::$variant(core))
            }
            fn detached($c2: &Arc<dyn Clock>) -> Self {
                $detached
            }
            fn stat_ids($id: &Id) -> Box<[Id]> {
                $ids
            }
        }
    };
}

meter_kind!(
    Counter,
    Counter,
    "counter",
    |_clock| counter::CounterCore::default(),
    |id| Box::new([id.with_default_stat("count")]),
    |_c| Counter::detached()
);
meter_kind!(
    Timer,
    Timer,
    "timer",
    |clock| timer::TimerCore::new(clock.clone()),
    |id| stats_ids(id, "totalTime"),
    |c| Timer::detached(c.clone())
);
meter_kind!(
    DistributionSummary,
    DistributionSummary,
    "distribution summary",
    |_clock| distribution_summary::SummaryCore::default(),
    |id| stats_ids(id, "totalAmount"),
    |_c| DistributionSummary::detached()
);
meter_kind!(
    Gauge,
    Gauge,
    "gauge",
    |clock| gauge::GaugeCore::new(clock.clone()),
    |id| Box::new([id.with_default_stat("gauge")]),
    |c| Gauge::detached(c.clone())
);
meter_kind!(
    MaxGauge,
    MaxGauge,
    "max gauge",
    |_clock| max_gauge::MaxGaugeCore::default(),
    |id| Box::new([id.with_default_stat("max")]),
    |_c| MaxGauge::detached()
);
meter_kind!(
    PercentileTimer,
    PercentileTimer,
    "percentile timer",
    |clock| percentile_timer::PercentileTimerCore::new(clock.clone()),
    |id| percentile_ids(id, "totalTime"),
    |c| PercentileTimer::detached(c.clone())
);
meter_kind!(
    PercentileDistributionSummary,
    PercentileDistributionSummary,
    "percentile distribution summary",
    |_clock| percentile_distribution_summary::PercentileSummaryCore::default(),
    |id| percentile_ids(id, "totalAmount"),
    |_c| PercentileDistributionSummary::detached()
);
