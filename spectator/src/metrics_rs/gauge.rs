//! The facade's gauge: `set`, `increment` and `decrement`, reported at every poll while it
//! holds a value.

use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use crate::meter::atomic::AtomicF64;
use crate::meter::{push, Meter, MeterKind, Poll};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The registry's handle on a facade gauge (the recorder hands out its `Arc` as a
/// `metrics::Gauge`).
pub(crate) struct FacadeGauge(pub(crate) Arc<GaugeCore>);

/// One facade gauge. It starts at 0 (as `metrics` gauges do) and reports nothing until its
/// first update.
#[derive(Default)]
pub(crate) struct GaugeCore {
    value: AtomicF64,
    /// Whether it was ever updated.
    used: AtomicBool,
    /// Whether the current NaN was reported (once, as a native gauge does).
    nan_reported: AtomicBool,
}

impl GaugeCore {
    #[inline]
    fn mark_used(&self) {
        // A load first: an up/down gauge hit from many threads keeps the flag's line shared.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }
}

impl Meter for GaugeCore {
    fn kind(&self) -> &'static str {
        FacadeGauge::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        if !self.used.load(Ordering::Relaxed) {
            return 0;
        }
        let v = self.value.load();
        if v.is_nan() {
            // Reported once, so that a spectatord output tells spectatord to stop; then the
            // gauge is idle and may expire like any other meter.
            if !self.nan_reported.swap(true, Ordering::Relaxed) {
                out.push(Measurement::new(id.with_default_stat_of(Stat::Gauge), v));
            }
            return 0;
        }
        if self.nan_reported.load(Ordering::Relaxed) {
            self.nan_reported.store(false, Ordering::Relaxed);
        }
        push(out, id, Stat::Gauge, v);
        // The value stands until changed: the gauge stays active, with or without handles.
        poll.now_ms
    }
}

impl MeterKind for FacadeGauge {
    const KIND: &'static str = "gauge (metrics facade)";
    type Core = GaugeCore;
    fn new_core(_: &Arc<dyn Clock>) -> GaugeCore {
        GaugeCore::default()
    }
    fn from_core(core: Arc<GaugeCore>) -> FacadeGauge {
        FacadeGauge(core)
    }
}

impl metrics::GaugeFn for GaugeCore {
    #[inline]
    fn increment(&self, value: f64) {
        self.value.add(value);
        self.mark_used();
    }

    #[inline]
    fn decrement(&self, value: f64) {
        self.value.add(-value);
        self.mark_used();
    }

    #[inline]
    fn set(&self, value: f64) {
        self.value.store(value);
        self.mark_used();
    }
}
