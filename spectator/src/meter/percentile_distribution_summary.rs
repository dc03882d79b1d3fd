//! Percentile distribution summary: a summary plus a histogram over the percentile buckets.

use super::distribution_summary::{accepts, SummaryCore};
use super::percentile_buckets::{self as buckets, LENGTH};
use super::percentile_timer::snapshot;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A [`DistributionSummary`](crate::DistributionSummary) that also counts each record in one
/// of 276 buckets. Besides the summary's four statistics, each poll reports
/// `statistic=percentile, percentile=D%04X` with the count of every bucket used since the last
/// poll. Amounts are clamped to `0 ..= i64::MAX` and truncated to integers for bucketing.
///
/// ```
/// let registry = spectator::Registry::default();
/// let payload = registry.percentile_distribution_summary("rpc.payload", &[]);
/// for size in 1..=1000 {
///     payload.record(size as f64);
/// }
/// let p90 = payload.percentile(90.0);
/// assert!(p90 > 800.0 && p90 < 1000.0, "{p90}");
/// ```
#[derive(Clone, Debug)]
pub struct PercentileDistributionSummary {
    pub(crate) core: Arc<PercentileSummaryCore>,
}

#[derive(Debug)]
pub(crate) struct PercentileSummaryCore {
    pub(crate) summary: SummaryCore,
    pub(crate) buckets: [[AtomicU64; LENGTH]; 2],
}

impl Default for PercentileSummaryCore {
    fn default() -> Self {
        PercentileSummaryCore {
            summary: SummaryCore::default(),
            buckets: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl PercentileDistributionSummary {
    pub(crate) fn detached() -> PercentileDistributionSummary {
        PercentileDistributionSummary {
            core: Arc::default(),
        }
    }

    /// Records one amount; ignored when negative, NaN or infinite.
    #[inline]
    pub fn record(&self, amount: f64) {
        if !accepts(amount) {
            return;
        }
        // `as` saturates: amounts past u64::MAX land in the last bucket like i64::MAX.
        let index = buckets::index_of((amount as u64).min(i64::MAX as u64));
        let core = &self.core;
        core.summary.stats.record_amount(amount, |phase| {
            core.buckets[phase][index].fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Records since the last poll.
    pub fn count(&self) -> u64 {
        self.core.summary.stats.count()
    }

    /// Sum of the amounts recorded since the last poll.
    pub fn total_amount(&self) -> f64 {
        self.core.summary.stats.total_amount()
    }

    /// The `p`-th percentile (0..=100) of the amounts recorded since the last poll, estimated
    /// from the buckets; NaN when nothing was recorded or `p` is NaN.
    pub fn percentile(&self, p: f64) -> f64 {
        let phase = self.core.summary.stats.current_phase();
        buckets::percentile(&snapshot(&self.core.buckets[phase]), p)
    }
}
