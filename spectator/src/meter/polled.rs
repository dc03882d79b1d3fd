//! Polled meters: a gauge or a monotonic counter whose value is sampled from an object at each
//! poll (Spectator Java's `PolledMeter`). Two kinds sharing one core, so they live together.
//!
//! The registry holds them alone (no handle is given out) with a `Weak` on the source: once
//! the source's last `Arc` is dropped they report nothing, and expire like any idle meter.

use super::monotonic_counter::{is_sample, Delta};
use super::{push, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::log::warn_limited;
use crate::measurement::Measurement;
use crate::sync::lock;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Weak};

/// A sampling function bound to its source: `None` once the source is gone.
pub(crate) type Source = Arc<dyn Fn() -> Option<f64> + Send + Sync>;

/// `f(&source)` while `source` lives.
pub(crate) fn source<T: Send + Sync + 'static>(
    source: &Arc<T>,
    f: impl Fn(&T) -> f64 + Send + Sync + 'static,
) -> Source {
    let weak: Weak<T> = Arc::downgrade(source);
    Arc::new(move || weak.upgrade().map(|s| f(&s)))
}

pub(crate) struct PolledCore {
    /// The source; a later registration of the same id replaces it.
    source: Mutex<Option<Source>>,
}

impl PolledCore {
    fn new() -> PolledCore {
        PolledCore {
            source: Mutex::new(None),
        }
    }

    pub(crate) fn set_source(&self, source: Source) {
        *lock(&self.source) = Some(source);
    }

    /// The source's value now; `None` when it is gone or its function panicked.
    fn sample(&self, id: &Id) -> Option<f64> {
        // Called without the lock held: the function may register meters itself.
        let source = lock(&self.source).clone()?;
        match catch_unwind(AssertUnwindSafe(|| source())) {
            Ok(v) => v,
            Err(_) => {
                warn_limited!(target: "spectator::registry", %id,
                    "a polled meter's function panicked; nothing reported for it this poll");
                None
            }
        }
    }
}

/// The registry's handle on a polled gauge (not public: polled meters are registered, never
/// handed out).
pub(crate) struct PolledGauge {
    pub(crate) core: Arc<PolledGaugeCore>,
}

pub(crate) struct PolledGaugeCore {
    pub(crate) polled: PolledCore,
}

impl Meter for PolledGaugeCore {
    fn kind(&self) -> &'static str {
        PolledGauge::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        match self.polled.sample(id) {
            Some(v) => {
                push(out, id, Stat::Gauge, v);
                poll.now_ms
            }
            None => 0,
        }
    }
}

impl MeterKind for PolledGauge {
    const KIND: &'static str = "polled gauge";
    type Core = PolledGaugeCore;
    fn new_core(_: &Arc<dyn Clock>) -> PolledGaugeCore {
        PolledGaugeCore {
            polled: PolledCore::new(),
        }
    }
    fn from_core(core: Arc<PolledGaugeCore>) -> PolledGauge {
        PolledGauge { core }
    }
}

/// The registry's handle on a polled monotonic counter.
pub(crate) struct PolledMonotonicCounter {
    pub(crate) core: Arc<PolledMonotonicCore>,
}

pub(crate) struct PolledMonotonicCore {
    pub(crate) polled: PolledCore,
    delta: Delta,
}

impl Meter for PolledMonotonicCore {
    fn kind(&self) -> &'static str {
        PolledMonotonicCounter::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let Some(sample) = self.polled.sample(id) else {
            return 0;
        };
        // Alive: a source whose value did not change is still there.
        if is_sample(sample) {
            push(out, id, Stat::Count, self.delta.take(sample));
        }
        poll.now_ms
    }
}

impl MeterKind for PolledMonotonicCounter {
    const KIND: &'static str = "polled monotonic counter";
    type Core = PolledMonotonicCore;
    fn new_core(_: &Arc<dyn Clock>) -> PolledMonotonicCore {
        PolledMonotonicCore {
            polled: PolledCore::new(),
            delta: Delta::new(),
        }
    }
    fn from_core(core: Arc<PolledMonotonicCore>) -> PolledMonotonicCounter {
        PolledMonotonicCounter { core }
    }
}
