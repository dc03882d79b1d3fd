//! Gauge: the last value of something, reported while it is fresh.

use super::atomic::AtomicF64;
use crate::clock::Clock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Holds the last value set. Each poll reports it (`statistic=gauge`, op Max) while the last
/// `set` is at most the registry's meter TTL (15 minutes) old by the registry clock's wall
/// time (its [coarse](crate::Clock::coarse_wall_time) reading at `set`: a few milliseconds of
/// resolution, and no hardware clock read on the recording path). `set(NaN)` stops reporting until the next finite `set`; infinities are not sent.
///
/// ```
/// let registry = spectator::Registry::default();
/// let queue = registry.gauge("server.queueSize", &[]);
/// assert!(queue.get().is_nan()); // never set
/// queue.set(12.0);
/// assert_eq!(queue.get(), 12.0);
/// ```
#[derive(Clone)]
pub struct Gauge {
    pub(crate) core: Arc<GaugeCore>,
}

pub(crate) struct GaugeCore {
    value: AtomicF64,
    /// Wall time (ms) of the last `set`.
    set_at: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge").field("value", &self.get()).finish()
    }
}

impl GaugeCore {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> GaugeCore {
        let value = AtomicF64::zero();
        value.store(f64::NAN);
        GaugeCore {
            value,
            set_at: AtomicU64::new(0),
            clock,
        }
    }

    /// The value to report at `now_ms`, if any.
    pub(crate) fn value_at(&self, now_ms: u64, ttl_ms: u64) -> Option<f64> {
        let set_at = self.set_at.load(Ordering::Relaxed);
        let v = self.value.load();
        (v.is_finite() && now_ms.saturating_sub(set_at) <= ttl_ms).then_some(v)
    }

    /// Wall time of the last set.
    pub(crate) fn set_at(&self) -> u64 {
        self.set_at.load(Ordering::Relaxed)
    }
}

impl Gauge {
    pub(crate) fn detached(clock: Arc<dyn Clock>) -> Gauge {
        Gauge {
            core: Arc::new(GaugeCore::new(clock)),
        }
    }

    /// Sets the value (any `f64`; NaN stops reporting).
    #[inline]
    pub fn set(&self, value: f64) {
        let core = &*self.core;
        // The TTL is 15 minutes: a clock tick of error is fine, a precise read is not needed.
        let now = core.clock.coarse_wall_time();
        // Stores only what changed: a gauge set again to its value within the same
        // millisecond (from several threads, say) keeps its cache line shared instead of
        // bouncing it between cores.
        if core.value.load().to_bits() != value.to_bits() {
            core.value.store(value);
        }
        if core.set_at.load(Ordering::Relaxed) != now {
            core.set_at.store(now, Ordering::Relaxed);
        }
    }

    /// The last value set (NaN if never set).
    pub fn get(&self) -> f64 {
        self.core.value.load()
    }
}
