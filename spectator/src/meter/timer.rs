//! Timer: how long something took, reported as count, total, total of squares and max.

use super::stats::{Extra, Stats, NANOS_TO_SECONDS};
use super::{Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::Arc;
use std::time::Duration;

/// Records durations. Each poll reports, for the records since the previous poll,
/// `statistic=count`, `totalTime` (seconds), `totalOfSquares` (seconds²) and `max` (seconds);
/// a timer with no record since the last poll reports nothing.
///
/// Totals are kept in integer nanoseconds (exact for 584 years of recorded time). Recording
/// is lock-free: a record never waits for a poll or for another thread recording into the
/// same timer.
///
/// ```
/// use std::time::Duration;
/// let registry = spectator::Registry::default();
/// let latency = registry.timer("server.requestLatency", &[]);
/// latency.record(Duration::from_millis(12));
/// let answer = latency.time(|| 6 * 7);
/// {
///     let _sw = latency.stopwatch(); // records when dropped
/// }
/// assert_eq!(answer, 42);
/// assert_eq!(latency.count(), 3);
/// assert!(latency.total_time() >= Duration::from_millis(12));
/// ```
#[derive(Clone)]
pub struct Timer {
    pub(crate) core: Arc<TimerCore>,
}

pub(crate) struct TimerCore<X = ()> {
    pub(crate) stats: Stats<X>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("count", &self.count())
            .field("total_time", &self.total_time())
            .finish()
    }
}

pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<X: Extra> TimerCore<X> {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> TimerCore<X> {
        TimerCore {
            stats: Stats::default(),
            clock,
        }
    }
}

impl Meter for TimerCore {
    fn kind(&self) -> &'static str {
        Timer::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        poll.updated_if(
            self.stats
                .measure(id, Stat::TotalTime, NANOS_TO_SECONDS, |_| {}, out),
        )
    }
}

impl MeterKind for Timer {
    const KIND: &'static str = "timer";
    type Core = TimerCore;
    fn new_core(clock: &Arc<dyn Clock>) -> TimerCore {
        TimerCore::new(clock.clone())
    }
    fn from_core(core: Arc<TimerCore>) -> Timer {
        Timer { core }
    }
}

/// What a [`Stopwatch`] records into: a timer, or a meter built on one.
pub(crate) trait TimeSink: Sync {
    /// The clock whose monotonic time measures the span.
    fn clock(&self) -> &dyn Clock;
    /// Records one span of `ns` nanoseconds.
    fn record_ns(&self, ns: u64);
}

impl TimeSink for TimerCore {
    fn clock(&self) -> &dyn Clock {
        &*self.clock
    }
    #[inline]
    fn record_ns(&self, ns: u64) {
        self.stats.record_ns(ns, |_| {});
    }
}

impl<'a> Stopwatch<'a> {
    /// A stopwatch started now on `sink`'s clock.
    #[inline]
    pub(crate) fn start(sink: &'a dyn TimeSink) -> Stopwatch<'a> {
        Stopwatch {
            start: sink.clock().interval_time(),
            sink,
            armed: true,
        }
    }
}

impl Timer {
    /// Records one duration.
    #[inline]
    pub fn record(&self, duration: Duration) {
        self.core.record_ns(duration_ns(duration));
    }

    /// Runs `f` and records how long it took, also when it panics.
    pub fn time<R>(&self, f: impl FnOnce() -> R) -> R {
        let _sw = self.stopwatch();
        f()
    }

    /// Starts measuring; the time is recorded when the stopwatch is dropped or stopped.
    #[inline]
    pub fn stopwatch(&self) -> Stopwatch<'_> {
        Stopwatch::start(&*self.core)
    }

    /// Records since the last poll.
    pub fn count(&self) -> u64 {
        self.core.stats.count()
    }

    /// Total recorded time since the last poll.
    pub fn total_time(&self) -> Duration {
        Duration::from_nanos(self.core.stats.total_ns())
    }
}

/// Measures one span of time for a [`Timer`] or a
/// [`PercentileTimer`](crate::PercentileTimer) and records it when dropped (so a panic or an
/// early return is still measured), or earlier with [`Stopwatch::stop`].
#[must_use = "a stopwatch records when dropped; dropping it at once records ~0"]
pub struct Stopwatch<'a> {
    sink: &'a dyn TimeSink,
    start: u64,
    armed: bool,
}

impl Stopwatch<'_> {
    /// Time since the stopwatch started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.sink.clock().interval_time().saturating_sub(self.start))
    }

    /// Records now and returns the recorded duration.
    pub fn stop(mut self) -> Duration {
        self.armed = false;
        let d = self.elapsed();
        self.sink.record_ns(duration_ns(d));
        d
    }
}

impl Drop for Stopwatch<'_> {
    fn drop(&mut self) {
        if self.armed {
            let ns = self.sink.clock().interval_time().saturating_sub(self.start);
            self.sink.record_ns(ns);
        }
    }
}

impl std::fmt::Debug for Stopwatch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopwatch")
            .field("elapsed", &self.elapsed())
            .finish()
    }
}
