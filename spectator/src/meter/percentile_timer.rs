//! Percentile timer: a timer plus a histogram over Spectator's percentile buckets.

use super::percentile_buckets as buckets;
use super::stats::{Buckets, NANOS_TO_SECONDS};
use super::timer::{duration_ns, Stopwatch, TimeSink, TimerCore};
use super::{Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{BucketPrefix, Id, Stat};
use crate::log::warn_limited;
use crate::measurement::Measurement;
use std::sync::Arc;
use std::time::Duration;

/// Shortest duration the histogram distinguishes (shorter ones count in its bucket).
pub const MIN: Duration = Duration::from_millis(10);
/// Longest duration the histogram distinguishes (longer ones count in its bucket).
pub const MAX: Duration = Duration::from_secs(60);

/// A [`Timer`](crate::Timer) that also counts each record in one of 276 buckets, so that
/// Atlas can compute percentiles across instances. Besides the timer's four statistics, each
/// poll reports `statistic=percentile, percentile=T%04X` (bucket index in hex) with the count
/// of every bucket used since the last poll. Durations are clamped to 10 ms ..= 60 s before
/// bucketing (another range:
/// [`Registry::percentile_timer_with_range`](crate::Registry::percentile_timer_with_range));
/// the timer statistics use the unclamped value.
///
/// ```
/// use std::time::Duration;
/// let registry = spectator::Registry::default();
/// let latency = registry.percentile_timer("rpc.latency", &[]);
/// for ms in 1..=100 {
///     latency.record(Duration::from_millis(ms));
/// }
/// let p50 = latency.percentile(50.0);
/// assert!(p50 > Duration::from_millis(40) && p50 < Duration::from_millis(60), "{p50:?}");
/// ```
#[derive(Clone)]
pub struct PercentileTimer {
    pub(crate) core: Arc<PercentileTimerCore>,
}

pub(crate) struct PercentileTimerCore {
    /// The timer's statistics, with bucket counts in each of its cells.
    pub(crate) timer: TimerCore<Buckets>,
    /// Durations are clamped to `min_ns ..= max_ns` for bucketing.
    min_ns: u64,
    max_ns: u64,
}

impl std::fmt::Debug for PercentileTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PercentileTimer")
            .field("count", &self.count())
            .field("total_time", &self.total_time())
            .finish()
    }
}

const MIN_NS: u64 = MIN.as_nanos() as u64;
const MAX_NS: u64 = MAX.as_nanos() as u64;

/// `min ..= max` in ns for bucketing: a `min` above `max` is swapped with it (with a warning);
/// durations beyond `u64::MAX` ns (584 years) are taken as that.
pub(crate) fn bucket_range(name: &str, min: Duration, max: Duration) -> (u64, u64) {
    let (mut lo, mut hi) = (duration_ns(min), duration_ns(max));
    if lo > hi {
        warn_limited!(target: "spectator::registry", name, ?min, ?max,
            "percentile timer range has min > max; swapped");
        std::mem::swap(&mut lo, &mut hi);
    }
    (lo, hi)
}

impl PercentileTimerCore {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> PercentileTimerCore {
        PercentileTimerCore::with_range(clock, MIN_NS, MAX_NS)
    }

    /// A core that clamps to `min_ns ..= max_ns` for bucketing, as made by [`bucket_range`].
    pub(crate) fn with_range(clock: Arc<dyn Clock>, min_ns: u64, max_ns: u64) -> Self {
        // Never a panic in `clamp` when recording, whatever the caller passed.
        let (min_ns, max_ns) = (min_ns.min(max_ns), min_ns.max(max_ns));
        PercentileTimerCore {
            timer: TimerCore::new(clock),
            min_ns,
            max_ns,
        }
    }

    /// The bucketing range in ns.
    pub(crate) fn range_ns(&self) -> (u64, u64) {
        (self.min_ns, self.max_ns)
    }
}

impl TimeSink for PercentileTimerCore {
    fn clock(&self) -> &dyn Clock {
        &*self.timer.clock
    }
    #[inline]
    fn record_ns(&self, ns: u64) {
        let index = buckets::index_of(ns.clamp(self.min_ns, self.max_ns));
        self.timer.stats.record_ns(ns, |b| b.bump(index));
    }
}

impl Meter for PercentileTimerCore {
    fn kind(&self) -> &'static str {
        PercentileTimer::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let stats = &self.timer.stats;
        poll.updated_if(stats.measure_with_buckets(
            id,
            Stat::TotalTime,
            NANOS_TO_SECONDS,
            BucketPrefix::Timer,
            out,
        ))
    }
}

impl MeterKind for PercentileTimer {
    const KIND: &'static str = "percentile timer";
    type Core = PercentileTimerCore;
    fn new_core(clock: &Arc<dyn Clock>) -> PercentileTimerCore {
        PercentileTimerCore::new(clock.clone())
    }
    fn from_core(core: Arc<PercentileTimerCore>) -> PercentileTimer {
        PercentileTimer { core }
    }
}

impl PercentileTimer {
    /// Records one duration.
    #[inline]
    pub fn record(&self, duration: Duration) {
        self.core.record_ns(duration_ns(duration));
    }

    /// Starts measuring; the time is recorded when the stopwatch is dropped or stopped.
    pub fn stopwatch(&self) -> Stopwatch<'_> {
        Stopwatch::start(&*self.core)
    }

    /// Runs `f` and records how long it took, also when it panics.
    pub fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        let _sw = self.stopwatch();
        f()
    }

    /// Records since the last poll.
    pub fn count(&self) -> u64 {
        self.core.timer.stats.count()
    }

    /// Total recorded time since the last poll.
    pub fn total_time(&self) -> Duration {
        Duration::from_nanos(self.core.timer.stats.total_ns())
    }

    /// The `p`-th percentile (0..=100) of the durations recorded since the last poll,
    /// estimated from the buckets; zero when nothing was recorded or `p` is NaN.
    pub fn percentile(&self, p: f64) -> Duration {
        let v = buckets::percentile(&self.core.timer.stats.bucket_counts(), p);
        if v.is_finite() && v > 0.0 {
            Duration::from_nanos(v as u64)
        } else {
            Duration::ZERO
        }
    }
}
