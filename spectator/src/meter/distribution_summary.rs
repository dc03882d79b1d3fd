//! Distribution summary: the sizes of things, reported like a timer but in the unit recorded.

use super::stats::Stats;
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

#[derive(Debug, Default)]
pub(crate) struct SummaryCore {
    pub(crate) stats: Stats,
}

/// Whether a summary accepts `v`.
#[inline]
pub(crate) fn accepts(v: f64) -> bool {
    v >= 0.0 && v.is_finite()
}

impl DistributionSummary {
    pub(crate) fn detached() -> DistributionSummary {
        DistributionSummary {
            core: Arc::default(),
        }
    }

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
