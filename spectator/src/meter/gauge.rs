//! Gauge: the last value of something, reported while it is fresh.

use super::atomic::AtomicF64;
use super::{push, LineHint, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Holds the last value set. Each poll reports it (`statistic=gauge`, op Max) while the last
/// `set` is at most the gauge's TTL old (the registry's meter TTL, 15 minutes, unless
/// [`Registry::gauge_with_ttl`](crate::Registry::gauge_with_ttl) gave it one) by the registry
/// clock's wall time (its [coarse](crate::Clock::coarse_wall_time) reading at `set`: a few milliseconds of
/// resolution, and no hardware clock read on the recording path). `set(NaN)` stops reporting
/// until the next finite `set` (the poll after a `set(NaN)` reports NaN once, which the
/// spectatord output sends so that spectatord stops too; the Atlas output leaves it out);
/// infinities are not sent.
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
    /// `set_at` of the last NaN reported: a gauge set to NaN reports it once, so that an
    /// output to a sidecar can tell it to stop (the Atlas output leaves NaN out).
    nan_reported_at: AtomicU64,
    /// Its own TTL in ms; [`REGISTRY_TTL`] for the registry's meter TTL.
    ttl_ms: AtomicU64,
    clock: Arc<dyn Clock>,
}

/// `ttl_ms` of a gauge that follows the registry's meter TTL.
const REGISTRY_TTL: u64 = u64::MAX;

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
            nan_reported_at: AtomicU64::new(0),
            ttl_ms: AtomicU64::new(REGISTRY_TTL),
            clock,
        }
    }

    /// Gives the gauge its own TTL (`REGISTRY_TTL - 1` at most).
    pub(crate) fn set_ttl(&self, ttl_ms: u64) {
        let ttl_ms = ttl_ms.min(REGISTRY_TTL - 1);
        // Stores only a change: `gauge_with_ttl` is often called at every use.
        if self.ttl_ms.load(Ordering::Relaxed) != ttl_ms {
            self.ttl_ms.store(ttl_ms, Ordering::Relaxed);
        }
    }
}

impl Meter for GaugeCore {
    fn kind(&self) -> &'static str {
        Gauge::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let set_at = self.set_at.load(Ordering::Relaxed);
        let ttl = match self.ttl_ms.load(Ordering::Relaxed) {
            REGISTRY_TTL => poll.gauge_ttl_ms,
            own => own,
        };
        if poll.now_ms.saturating_sub(set_at) <= ttl {
            let v = self.value.load();
            if !v.is_nan() {
                push(out, id, Stat::Gauge, v);
            } else if self.nan_reported_at.swap(set_at, Ordering::Relaxed) != set_at {
                out.push(Measurement::new(id.with_default_stat_of(Stat::Gauge), v));
            }
        }
        // A gauge's last update is its last set, whenever the poll happens; one with a TTL
        // longer than the registry's counts as updated until that TTL ends, so that it is
        // not removed while it still reports.
        if set_at == 0 {
            return 0; // never set
        }
        set_at.saturating_add(ttl.saturating_sub(poll.gauge_ttl_ms))
    }

    fn line_hint(&self, id: &Id, poll: &Poll) -> Option<(Id, LineHint)> {
        let ttl = self.ttl_ms.load(Ordering::Relaxed);
        if ttl == REGISTRY_TTL {
            return None;
        }
        let set_at = self.set_at.load(Ordering::Relaxed);
        let left_ms = set_at.saturating_add(ttl).saturating_sub(poll.now_ms);
        // spectatord takes whole seconds, at least 1.
        let hint = LineHint::GaugeTtl {
            seconds: left_ms.div_ceil(1000).max(1),
        };
        Some((id.with_default_stat_of(Stat::Gauge), hint))
    }
}

impl MeterKind for Gauge {
    const KIND: &'static str = "gauge";
    type Core = GaugeCore;
    fn new_core(clock: &Arc<dyn Clock>) -> GaugeCore {
        GaugeCore::new(clock.clone())
    }
    fn from_core(core: Arc<GaugeCore>) -> Gauge {
        Gauge { core }
    }
}

impl Gauge {
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
