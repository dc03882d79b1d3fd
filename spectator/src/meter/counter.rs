//! Counter: how often something happened, reported as the sum added since the last poll.

use super::atomic::AtomicF64;
use super::{default_stat_id, push, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::Id;
use crate::measurement::Measurement;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counts events; each poll reports the sum added since the previous one (`statistic=count`,
/// op Add) and nothing when that sum is 0.
///
/// `increment()` is one `fetch_add`; `add(v)` ignores `v <= 0`, NaN and infinities (a
/// counter only goes up).
///
/// ```
/// let registry = spectator::Registry::default();
/// let requests = registry.counter("server.numRequests", &[("statusCode", "200")]);
/// requests.increment();
/// requests.add(2.5);
/// requests.add(f64::NAN); // ignored
/// assert_eq!(requests.count(), 3.5);
/// ```
#[derive(Clone, Debug)]
pub struct Counter {
    pub(crate) core: Arc<CounterCore>,
}

#[derive(Debug, Default)]
pub(crate) struct CounterCore {
    /// Whole increments: the common case, a plain `fetch_add`.
    increments: AtomicU64,
    /// Fractional or large amounts from `add`.
    amount: AtomicF64,
}

impl CounterCore {
    /// Takes the sum since the previous take.
    pub(crate) fn take(&self) -> f64 {
        let n = self.increments.swap(0, Ordering::Relaxed);
        n as f64 + self.amount.take()
    }

    fn peek(&self) -> f64 {
        self.increments.load(Ordering::Relaxed) as f64 + self.amount.load()
    }
}

impl Meter for CounterCore {
    fn measure(&self, ids: &[Id], poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        poll.updated_if(push(out, &ids[0], self.take()))
    }
}

impl MeterKind for Counter {
    const KIND: &'static str = "counter";
    type Core = CounterCore;
    fn new_core(_: &Arc<dyn Clock>) -> CounterCore {
        CounterCore::default()
    }
    fn from_core(core: Arc<CounterCore>) -> Counter {
        Counter { core }
    }
    fn stat_ids(id: &Id) -> Box<[Id]> {
        default_stat_id(id, "count")
    }
}

impl Counter {
    /// Adds 1.
    #[inline]
    pub fn increment(&self) {
        self.core.increments.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `amount`; ignored unless it is finite and greater than 0.
    #[inline]
    pub fn add(&self, amount: f64) {
        if amount > 0.0 && amount.is_finite() {
            self.core.amount.add(amount);
        }
    }

    /// The sum added since the last poll.
    pub fn count(&self) -> f64 {
        self.core.peek()
    }
}
