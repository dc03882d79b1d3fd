//! Monotonic counter: a sampled source that only grows, reported as its increase per poll.

use super::atomic::AtomicF64;
use super::{push, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::Arc;

/// Reports how much a monotonically increasing source grew: you [`set`](MonotonicCounter::set)
/// the source's current value (bytes read from `/proc`, a library's own running total), and
/// each poll reports the increase since the value the previous poll saw (`statistic=count`,
/// op Add), like a [`Counter`](crate::Counter) incremented by that amount.
///
/// - The first sample only sets the base: nothing is reported for it.
/// - A sample lower than the previous one (the source restarted) becomes the new base
///   silently: nothing is reported for that poll.
/// - NaN, infinite and negative values are ignored (the previous sample stands).
/// - Nothing is reported when the value did not change.
///
/// Spectator Java's `MonotonicCounter` pattern (a `PolledMeter` monitoring a monotonic
/// value), spectator-py's and spectatord's `MonotonicCounter` (`C:` lines). To sample a value
/// at each poll instead of setting it, see
/// [`Registry::polled_monotonic_counter`](crate::Registry::polled_monotonic_counter).
///
/// ```
/// use spectator::{ManualClock, Registry};
/// let registry = Registry::builder().clock(ManualClock::new(0, 0)).build();
/// let read = registry.monotonic_counter("disk.bytesRead", &[]);
/// read.set(1000.0);
/// assert!(registry.measurements().is_empty()); // the first sample is the base
/// read.set(1500.0);
/// assert_eq!(registry.measurements()[0].value, 500.0);
/// read.set(f64::NAN); // ignored
/// assert_eq!(read.get(), 1500.0);
/// ```
#[derive(Clone)]
pub struct MonotonicCounter {
    pub(crate) core: Arc<MonotonicCounterCore>,
}

impl std::fmt::Debug for MonotonicCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonotonicCounter")
            .field("value", &self.get())
            .finish()
    }
}

/// The increase of a sampled value between polls. Only polls (serialised by the registry)
/// call [`Delta::take`].
#[derive(Debug)]
pub(crate) struct Delta {
    /// The sample the previous poll saw; NaN before the first.
    base: AtomicF64,
}

impl Delta {
    pub(crate) fn new() -> Delta {
        let base = AtomicF64::zero();
        base.store(f64::NAN);
        Delta { base }
    }

    /// The increase from the previous sample to `sample` (0 at the first sample and when it
    /// went down), making `sample` the base.
    pub(crate) fn take(&self, sample: f64) -> f64 {
        let base = self.base.load();
        self.base.store(sample);
        if base.is_nan() || sample < base {
            0.0
        } else {
            sample - base
        }
    }
}

/// Whether `v` can be a sample of a monotonic source.
pub(crate) fn is_sample(v: f64) -> bool {
    v.is_finite() && v >= 0.0
}

#[derive(Debug)]
pub(crate) struct MonotonicCounterCore {
    /// The last value set; NaN before the first.
    value: AtomicF64,
    delta: Delta,
}

impl Meter for MonotonicCounterCore {
    fn kind(&self) -> &'static str {
        MonotonicCounter::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let sample = self.value.load();
        if sample.is_nan() {
            return 0;
        }
        poll.updated_if(push(out, id, Stat::Count, self.delta.take(sample)))
    }
}

impl MeterKind for MonotonicCounter {
    const KIND: &'static str = "monotonic counter";
    type Core = MonotonicCounterCore;
    fn new_core(_: &Arc<dyn Clock>) -> MonotonicCounterCore {
        let value = AtomicF64::zero();
        value.store(f64::NAN);
        MonotonicCounterCore {
            value,
            delta: Delta::new(),
        }
    }
    fn from_core(core: Arc<MonotonicCounterCore>) -> MonotonicCounter {
        MonotonicCounter { core }
    }
}

impl MonotonicCounter {
    /// Sets the source's current value; ignored when NaN, infinite or negative.
    #[inline]
    pub fn set(&self, value: f64) {
        if is_sample(value) {
            self.core.value.store(value);
        }
    }

    /// The last value set (NaN if none).
    pub fn get(&self) -> f64 {
        self.core.value.load()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_bases_rebases_and_grows() {
        let d = Delta::new();
        assert_eq!(d.take(10.0), 0.0);
        assert_eq!(d.take(15.5), 5.5);
        assert_eq!(d.take(15.5), 0.0);
        assert_eq!(d.take(3.0), 0.0);
        assert_eq!(d.take(4.0), 1.0);
    }
}
