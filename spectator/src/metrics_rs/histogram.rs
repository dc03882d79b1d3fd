//! The facade's histograms: a distribution summary or a timer (optionally with percentiles)
//! behind one `metrics::Histogram`.

use crate::clock::Clock;
use crate::id::Id;
use crate::measurement::Measurement;
use crate::meter::{Meter, MeterKind, Poll};
use crate::{DistributionSummary, PercentileDistributionSummary, PercentileTimer, Timer};
use std::sync::Arc;
use std::time::Duration;

/// A meter a facade histogram records into.
pub(crate) trait Inner: MeterKind + Send + Sync + 'static {
    /// Name used in warnings.
    const FACADE_KIND: &'static str;
    /// Records a value already in the meter's unit: an amount, or nanoseconds for timers.
    fn record_value(&self, v: f64);
}

impl Inner for DistributionSummary {
    const FACADE_KIND: &'static str = "distribution summary (metrics facade)";
    #[inline]
    fn record_value(&self, v: f64) {
        self.record(v);
    }
}

impl Inner for PercentileDistributionSummary {
    const FACADE_KIND: &'static str = "percentile distribution summary (metrics facade)";
    #[inline]
    fn record_value(&self, v: f64) {
        self.record(v);
    }
}

/// Nanoseconds to a duration; `None` for negative values and NaN (a timer records no such
/// thing), saturating at `u64::MAX` ns.
#[inline]
fn nanos(ns: f64) -> Option<Duration> {
    // `as` saturates; NaN fails the comparison.
    (ns >= 0.0).then(|| Duration::from_nanos(ns as u64))
}

impl Inner for Timer {
    const FACADE_KIND: &'static str = "timer (metrics facade)";
    #[inline]
    fn record_value(&self, ns: f64) {
        if let Some(d) = nanos(ns) {
            self.record(d);
        }
    }
}

impl Inner for PercentileTimer {
    const FACADE_KIND: &'static str = "percentile timer (metrics facade)";
    #[inline]
    fn record_value(&self, ns: f64) {
        if let Some(d) = nanos(ns) {
            self.record(d);
        }
    }
}

/// The registry's handle on a facade histogram recording into an `M`. `NS` is the number of
/// nanoseconds in one unit of the recorded values for timers, 0 for summaries (values are
/// recorded as given).
pub(crate) struct FacadeHistogram<M, const NS: u64>(pub(crate) Arc<HistogramCore<M, NS>>);

/// The shared state: a handle on the inner meter and the registry's view of the same meter.
pub(crate) struct HistogramCore<M, const NS: u64> {
    handle: M,
    meter: Arc<dyn Meter>,
}

impl<M: Inner, const NS: u64> Meter for HistogramCore<M, NS> {
    fn kind(&self) -> &'static str {
        M::FACADE_KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        self.meter.measure(id, poll, out)
    }
}

impl<M: Inner, const NS: u64> MeterKind for FacadeHistogram<M, NS> {
    const KIND: &'static str = M::FACADE_KIND;
    type Core = HistogramCore<M, NS>;
    fn new_core(clock: &Arc<dyn Clock>) -> HistogramCore<M, NS> {
        let (handle, meter) = M::create_from(M::new_core(clock));
        HistogramCore { handle, meter }
    }
    fn from_core(core: Arc<HistogramCore<M, NS>>) -> Self {
        FacadeHistogram(core)
    }
}

impl<M: Inner, const NS: u64> metrics::HistogramFn for HistogramCore<M, NS> {
    #[inline]
    fn record(&self, value: f64) {
        if NS == 0 {
            self.handle.record_value(value);
        } else {
            self.handle.record_value(value * NS as f64);
        }
    }
}
