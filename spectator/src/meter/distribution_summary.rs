//! Distribution summary: the sizes of things, reported like a timer but in the unit recorded.

use super::stats::{Extra, Stats, AS_RECORDED};
use super::{Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::Arc;

/// Records amounts (bytes, items, ...). Each poll reports, for the records since the previous
/// poll, `statistic=count`, `totalAmount`, `totalOfSquares` and `max`; nothing when idle.
///
/// Negative amounts, NaN and infinities are ignored.
///
/// ```
/// let registry = spectator::Registry::default();
/// let sizes = registry.distribution_summary("server.requestSize", &[]);
/// sizes.record(10.0);
/// sizes.record(30.0);
/// sizes.record(-5.0); // ignored
/// assert_eq!(sizes.count(), 2);
/// assert_eq!(sizes.total_amount(), 40.0);
/// ```
#[derive(Clone, Debug)]
pub struct DistributionSummary {
    pub(crate) core: Arc<SummaryCore>,
}

pub(crate) struct SummaryCore<X = ()> {
    pub(crate) stats: Stats<X>,
}

impl<X: Extra> std::fmt::Debug for SummaryCore<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SummaryCore")
            .field("stats", &self.stats)
            .finish()
    }
}

impl<X: Extra> Default for SummaryCore<X> {
    fn default() -> Self {
        SummaryCore {
            stats: Stats::default(),
        }
    }
}

/// Whether a summary accepts `v`.
#[inline]
pub(crate) fn accepts(v: f64) -> bool {
    v >= 0.0 && v.is_finite()
}

impl Meter for SummaryCore {
    fn kind(&self) -> &'static str {
        DistributionSummary::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        poll.updated_if(
            self.stats
                .measure(id, Stat::TotalAmount, AS_RECORDED, |_| {}, out),
        )
    }
}

impl MeterKind for DistributionSummary {
    const KIND: &'static str = "distribution summary";
    type Core = SummaryCore;
    fn new_core(_: &Arc<dyn Clock>) -> SummaryCore {
        SummaryCore::default()
    }
    fn from_core(core: Arc<SummaryCore>) -> DistributionSummary {
        DistributionSummary { core }
    }
}

impl DistributionSummary {
    /// Records one amount; ignored when negative, NaN or infinite.
    #[inline]
    pub fn record(&self, amount: f64) {
        if accepts(amount) {
            self.core.stats.record_amount(amount, |_| {});
        }
    }

    /// Records since the last poll.
    pub fn count(&self) -> u64 {
        self.core.stats.count()
    }

    /// Sum of the amounts recorded since the last poll.
    pub fn total_amount(&self) -> f64 {
        self.core.stats.total_amount()
    }
}
