//! Counter: how often something happened, reported as the sum added since the last poll.

use super::adder::Adder;
use super::{push, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::Arc;

/// Counts events; each poll reports the sum added since the previous one (`statistic=count`,
/// op Add) and nothing when that sum is 0.
///
/// `add(v)` ignores `v <= 0`, NaN and infinities (a counter only goes up); `increment()` is
/// `add(1.0)`, kept as an integer until the poll, where it is added to the sum of the other
/// adds (cheaper to add to; a counter that mixes increments with fractional adds may differ
/// in the last bit from one `f64` sum taken in call order).
///
/// While one thread at a time updates a counter, an increment is one `fetch_add` and an add
/// one compare-and-swap, on one atomic. Once two threads update it at the same moment, the
/// counter spreads its sum over up to four cells on their own cache lines (512 bytes,
/// allocated once) and each thread adds to its own, so threads sharing a hot counter do not
/// slow each other down. Threads that take turns (a pool serving one request each) hand the
/// counter over without spreading it.
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
    /// The sum since the last poll: an integer for increments and an `f64` for other adds,
    /// each one atomic, striped once threads collide on it.
    sum: Adder,
}

impl CounterCore {
    /// Takes the sum since the previous take.
    pub(crate) fn take(&self) -> f64 {
        self.sum.take()
    }
}

impl Meter for CounterCore {
    fn kind(&self) -> &'static str {
        Counter::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        poll.updated_if(push(out, id, Stat::Count, self.take()))
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
}

impl Counter {
    /// Adds 1.
    #[inline]
    pub fn increment(&self) {
        self.core.sum.increment();
    }

    /// Adds `amount`; ignored unless it is finite and greater than 0.
    #[inline]
    pub fn add(&self, amount: f64) {
        if amount > 0.0 && amount.is_finite() {
            self.core.sum.add(amount);
        }
    }

    /// The sum added since the last poll.
    pub fn count(&self) -> f64 {
        self.core.sum.sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn counter() -> Counter {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0, 0));
        Counter::detached(&clock)
    }

    #[test]
    fn ignores_what_a_counter_cannot_add() {
        let c = counter();
        for v in [0.0, -0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            c.add(v);
        }
        assert_eq!(c.count(), 0.0);
        c.increment();
        c.add(0.25);
        assert_eq!(c.count(), 1.25);
        assert_eq!(c.core.take(), 1.25);
        assert_eq!(c.count(), 0.0);
    }

    #[test]
    fn two_threads_incrementing_one_counter_sum_exactly() {
        const N: u64 = 250_000;
        let c = counter();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..N {
                        c.increment();
                    }
                });
            }
        });
        assert_eq!(c.count(), (2 * N) as f64);
        assert_eq!(c.core.take(), (2 * N) as f64);
    }

    #[test]
    fn polls_racing_two_writers_lose_nothing() {
        const N: u64 = 200_000;
        let c = counter();
        let done = std::sync::atomic::AtomicUsize::new(0);
        let mut polled = 0.0;
        std::thread::scope(|s| {
            for w in 0..2 {
                let (c, done) = (&c, &done);
                s.spawn(move || {
                    for i in 0..N {
                        // One writer increments, the other adds halves: both kinds of update.
                        if w == 0 {
                            c.increment();
                        } else if i % 2 == 0 {
                            c.add(0.5);
                        } else {
                            c.add(1.5);
                        }
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Release);
                });
            }
            while done.load(std::sync::atomic::Ordering::Acquire) < 2 {
                polled += c.core.take();
                std::thread::yield_now();
            }
        });
        polled += c.core.take();
        // Every partial sum is a multiple of 0.5 well below 2^52: exact in an f64.
        assert_eq!(polled, (2 * N) as f64);
        assert_eq!(c.count(), 0.0);
    }
}
