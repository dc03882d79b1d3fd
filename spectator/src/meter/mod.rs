//! The meter kinds, each in its own file, and what the registry needs to know about them.
//!
//! Handles ([`Counter`], [`Timer`], ...) are cheap to clone (an `Arc` inside), `Send + Sync`,
//! and record with a few atomic operations: no mutex, no allocation, no lookup. The registry
//! keeps the same `Arc`s and asks each for its [`Measurement`]s when polled.
//!
//! # Adding a meter kind
//! A kind lives in one file that holds its handle, its shared core, an `impl Meter` for the
//! core (what it reports at a poll, each value under its id with a statistic added by
//! [`push`] or [`push_stat`]) and an `impl MeterKind` for the handle (how it is created). Then
//! it gets one line in [`for_each_meter_kind!`], which
//! generates the registry's accessors and the macros' call-site support. A kind that must not
//! expire, or that the spectatord output sends differently, says so in its `impl Meter`
//! ([`Meter::expires`], [`Meter::line_hint`]). A kind with creation settings (a range) or no
//! handle (polled meters) gets its own registry method instead of a list line.

pub(crate) mod adder;
mod age_gauge;
pub(crate) mod atomic;
mod counter;
mod distribution_summary;
mod gauge;
mod long_task_timer;
mod max_gauge;
mod monotonic_counter;
pub mod percentile_buckets;
mod percentile_distribution_summary;
mod percentile_timer;
mod polled;
mod stats;
mod timer;

pub use age_gauge::AgeGauge;
pub use counter::Counter;
pub use distribution_summary::DistributionSummary;
pub use gauge::Gauge;
pub use long_task_timer::{LongTask, LongTaskTimer};
pub use max_gauge::MaxGauge;
pub use monotonic_counter::MonotonicCounter;
pub use percentile_distribution_summary::PercentileDistributionSummary;
pub(crate) use percentile_distribution_summary::{
    bucket_range as summary_bucket_range, PercentileSummaryCore,
};
pub use percentile_timer::PercentileTimer;
pub(crate) use percentile_timer::{bucket_range as timer_bucket_range, PercentileTimerCore};
pub(crate) use polled::{source as polled_source, PolledGauge, PolledMonotonicCounter};
pub use timer::{Stopwatch, Timer};

use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::{Measurement, Op};
use std::any::TypeId;
use std::sync::Arc;

/// Every registry-created meter kind, once: handle type, accessor, accessor by id, and the
/// noun used in docs and warnings. The registry's accessors and the macros' call-site support
/// are generated from this list.
macro_rules! for_each_meter_kind {
    ($callback:ident) => {
        $callback! {
            Counter => counter, counter_with_id, "counter";
            Timer => timer, timer_with_id, "timer";
            DistributionSummary => distribution_summary, distribution_summary_with_id, "distribution summary";
            Gauge => gauge, gauge_with_id, "gauge";
            MaxGauge => max_gauge, max_gauge_with_id, "max gauge";
            PercentileTimer => percentile_timer, percentile_timer_with_id, "percentile timer";
            PercentileDistributionSummary => percentile_distribution_summary,
                percentile_distribution_summary_with_id, "percentile distribution summary";
            MonotonicCounter => monotonic_counter, monotonic_counter_with_id, "monotonic counter";
            AgeGauge => age_gauge, age_gauge_with_id, "age gauge";
            LongTaskTimer => long_task_timer, long_task_timer_with_id, "long task timer";
        }
    };
}
pub(crate) use for_each_meter_kind;

/// What a poll tells each meter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Poll {
    /// Wall time of the poll, ms since the epoch (registry clock).
    pub(crate) now_ms: u64,
    /// How long a gauge keeps reporting after its last `set`, in ms.
    pub(crate) gauge_ttl_ms: u64,
}

impl Poll {
    /// What [`Meter::measure`] returns for a meter that was `active` in the interval: the
    /// poll's time if so, else 0 (not known to be updated).
    pub(crate) fn updated_if(&self, active: bool) -> u64 {
        if active {
            self.now_ms
        } else {
            0
        }
    }
}

/// The registry's view of a meter: the shared state behind every handle of one id.
///
/// Java Spectator's `Meter.measure()`: each kind says what it reports, in its own file.
pub(crate) trait Meter: Send + Sync + 'static {
    /// Its kind's name ([`MeterKind::KIND`]), for warnings.
    fn kind(&self) -> &'static str;

    /// Its concrete type, for the registry to check before it hands out a typed handle.
    fn core_type(&self) -> TypeId {
        TypeId::of::<Self>()
    }

    /// Appends what this meter, registered as `id`, reports at `poll`, taking the
    /// interval's deltas; each measurement's id is `id` with its statistic (see [`push`]).
    /// Returns the latest wall time the meter is known to have been updated at (0 if
    /// unknown), for expiry.
    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64;

    /// Whether the registry may remove this meter once only the registry holds it and it
    /// has been idle for the meter TTL. An age gauge says no: "time since the last success"
    /// must keep growing when nothing holds it any more.
    fn expires(&self) -> bool {
        true
    }

    /// How the spectatord output should send this meter's measurement at `poll`, when not as
    /// the measurement alone says (see [`LineHint`]), with the id of that measurement.
    fn line_hint(&self, id: &Id, poll: &Poll) -> Option<(Id, LineHint)> {
        let _ = (id, poll);
        None
    }
}

/// What the spectatord output needs to know about a meter beyond its measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LineHint {
    /// An age gauge that was set: sent as an `A:` line carrying this wall time (ms since the
    /// epoch, at most the poll's) instead of its `gauge` measurement, so that spectatord
    /// computes the age itself and keeps it growing.
    Age { since_ms: u64 },
    /// A gauge with its own TTL: sent as `g,SECONDS:` with the seconds it has left, so that
    /// spectatord stops reporting it when this registry does.
    GaugeTtl { seconds: u64 },
}

/// One poll of the registry, as handed to an output.
#[derive(Debug, Default)]
pub(crate) struct Step {
    /// Everything measured: what [`Registry::measurements`](crate::Registry::measurements)
    /// returns and the Atlas output sends (an age gauge's `gauge` = its age in seconds).
    pub(crate) measurements: Vec<Measurement>,
    /// For the spectatord output: how to send the measurements of some meters (age gauges,
    /// gauges with their own TTL), by the id of their measurement.
    pub(crate) hints: Vec<(Id, LineHint)>,
}

/// A handle type the registry creates and finds (Java's `newCounter(Id)` & co., one impl per
/// kind in the kind's file). Sealed: only this crate's meters.
pub(crate) trait MeterKind: Sized {
    /// Name used in warnings.
    const KIND: &'static str;
    /// The shared state behind every handle of one id.
    type Core: Meter;
    /// A fresh core.
    fn new_core(clock: &Arc<dyn Clock>) -> Self::Core;
    /// A handle on `core`.
    fn from_core(core: Arc<Self::Core>) -> Self;

    /// A new meter around `core` (from [`MeterKind::new_core`], or made with other settings):
    /// its handle and the registry's view of it.
    fn create_from(core: Self::Core) -> (Self, Arc<dyn Meter>) {
        let core = Arc::new(core);
        (Self::from_core(core.clone()), core)
    }

    /// A meter that records into nothing the registry reports.
    fn detached(clock: &Arc<dyn Clock>) -> Self {
        Self::from_core(Arc::new(Self::new_core(clock)))
    }
}

/// Pushes `value` under `id` with `statistic=stat`, unless `id` has a statistic of its own
/// (then under `id`, with the op of its statistic): the one measurement of a single-statistic
/// meter. Nothing is pushed when the rules say not to send it: never NaN or infinities, and
/// never an Add of 0 (nothing happened). Returns whether anything was pushed.
pub(crate) fn push(out: &mut Vec<Measurement>, id: &Id, stat: Stat, value: f64) -> bool {
    let op = match id.tag("statistic") {
        Some(own) => Op::from_statistic(Some(own)),
        None => stat.op(),
    };
    if !sendable(op, value) {
        return false;
    }
    out.push(Measurement {
        id: id.with_default_stat_of(stat),
        op,
        value,
    });
    true
}

/// Pushes `value` under `id` with `statistic=stat` (replacing any statistic of its own): one
/// of the statistics of a timer or summary. Nothing when the rules say not to send it (see
/// [`push`]).
pub(crate) fn push_stat(out: &mut Vec<Measurement>, id: &Id, stat: Stat, value: f64) -> bool {
    if !sendable(stat.op(), value) {
        return false;
    }
    out.push(Measurement {
        id: id.with_stat_of(stat),
        op: stat.op(),
        value,
    });
    true
}

/// Whether `value` may be sent with `op`: finite, and for an Add not 0.
fn sendable(op: Op, value: f64) -> bool {
    value.is_finite() && !(op == Op::Add && value == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn measure<M: MeterKind>(core: &Arc<dyn Meter>, id: &Id) -> Vec<String> {
        let mut out = Vec::new();
        let poll = Poll {
            now_ms: 0,
            gauge_ttl_ms: 1,
        };
        core.measure(id, &poll, &mut out);
        out.iter()
            .map(|m| format!("{}={}", m.id, m.value))
            .collect()
    }

    #[test]
    fn a_handle_and_the_registry_view_share_one_core() {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0, 0));
        let (counter, core) = Counter::create_from(Counter::new_core(&clock));
        counter.increment();
        assert_eq!(
            measure::<Counter>(&core, &Id::new("a.b", &[])),
            ["a.b:statistic=count=1"]
        );
    }
}
