//! The facade's counter: `increment(n)` adds, `absolute(v)` is sampled like a
//! `MonotonicCounter` (the increase since the previous poll is reported).

use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use crate::meter::adder::Adder;
use crate::meter::{push, Meter, MeterKind, Poll};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The registry's handle on a facade counter (the recorder hands out its `Arc` as a
/// `metrics::Counter`).
pub(crate) struct FacadeCounter(pub(crate) Arc<CounterCore>);

/// One facade counter: whole increments, plus the last `absolute` value and the one the
/// previous poll saw.
#[derive(Default)]
pub(crate) struct CounterCore {
    /// Sum of `increment(n)` since the last poll: the counter's adder, so a facade counter
    /// that several threads increment at once spreads over cells as a `Counter` does.
    increments: Adder,
    /// The last `absolute(v)`; meaningful once `has_absolute` is set.
    absolute: AtomicU64,
    has_absolute: AtomicBool,
    /// The absolute value the previous poll sampled (polls are serialised by the registry);
    /// meaningful once `has_base` is set.
    base: AtomicU64,
    has_base: AtomicBool,
}

impl CounterCore {
    /// The increase of the absolute value since the previous poll: 0 at the first sample and
    /// when the value went down (the source restarted: the new value becomes the base).
    fn take_absolute(&self) -> u64 {
        if !self.has_absolute.load(Ordering::Acquire) {
            return 0;
        }
        let current = self.absolute.load(Ordering::Relaxed);
        let previous = self.base.swap(current, Ordering::Relaxed);
        if self.has_base.swap(true, Ordering::Relaxed) {
            current.saturating_sub(previous)
        } else {
            0
        }
    }
}

impl Meter for CounterCore {
    fn kind(&self) -> &'static str {
        FacadeCounter::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let delta = self.increments.take() + self.take_absolute() as f64;
        let pushed = push(out, id, Stat::Count, delta);
        // A counter fed by `absolute` keeps its base: expiring it would lose the next increase.
        if pushed || self.has_absolute.load(Ordering::Relaxed) {
            poll.now_ms
        } else {
            0
        }
    }
}

impl MeterKind for FacadeCounter {
    const KIND: &'static str = "counter (metrics facade)";
    type Core = CounterCore;
    fn new_core(_: &Arc<dyn Clock>) -> CounterCore {
        CounterCore::default()
    }
    fn from_core(core: Arc<CounterCore>) -> FacadeCounter {
        FacadeCounter(core)
    }
}

impl metrics::CounterFn for CounterCore {
    #[inline]
    fn increment(&self, value: u64) {
        self.increments.add_count(value);
    }

    #[inline]
    fn absolute(&self, value: u64) {
        self.absolute.store(value, Ordering::Relaxed);
        if !self.has_absolute.load(Ordering::Relaxed) {
            self.has_absolute.store(true, Ordering::Release);
        }
    }
}
