//! Percentile distribution summary: a summary plus a histogram over the percentile buckets.

use super::distribution_summary::{accepts, SummaryCore};
use super::percentile_buckets as buckets;
use super::stats::{Buckets, AS_RECORDED};
use super::{Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{BucketPrefix, Id, Stat};
use crate::log::warn_limited;
use crate::measurement::Measurement;
use std::sync::Arc;

/// A [`DistributionSummary`](crate::DistributionSummary) that also counts each record in one
/// of 276 buckets. Besides the summary's four statistics, each poll reports
/// `statistic=percentile, percentile=D%04X` with the count of every bucket used since the last
/// poll. Amounts are clamped to `0 ..= i64::MAX` (another range:
/// [`Registry::percentile_distribution_summary_with_range`](crate::Registry::percentile_distribution_summary_with_range))
/// and truncated to integers for bucketing; the summary statistics use the unclamped amount.
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

pub(crate) struct PercentileSummaryCore {
    /// The summary's statistics, with bucket counts in each of its cells.
    pub(crate) summary: SummaryCore<Buckets>,
    /// Amounts are clamped to `min ..= max` for bucketing.
    min: f64,
    max: f64,
}

impl std::fmt::Debug for PercentileSummaryCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PercentileSummaryCore")
            .field("summary", &self.summary)
            .field("range", &(self.min, self.max))
            .finish_non_exhaustive()
    }
}

/// The largest amount the buckets tell apart.
pub(crate) const MAX_AMOUNT: f64 = i64::MAX as f64;

impl Default for PercentileSummaryCore {
    fn default() -> Self {
        PercentileSummaryCore::with_range(0.0, MAX_AMOUNT)
    }
}

/// `min ..= max` made usable for bucketing, warning about what had to change: a NaN `min`
/// becomes 0 and a NaN `max` `i64::MAX`; bounds are clamped to `0 ..= i64::MAX` (negative
/// amounts are not recorded anyway); a `min` above `max` is swapped with it.
pub(crate) fn bucket_range(name: &str, min: f64, max: f64) -> (f64, f64) {
    let fix = |v: f64, nan: f64| {
        if v.is_nan() {
            nan
        } else {
            v.clamp(0.0, MAX_AMOUNT)
        }
    };
    let (mut lo, mut hi) = (fix(min, 0.0), fix(max, MAX_AMOUNT));
    if lo.to_bits() != min.to_bits() || hi.to_bits() != max.to_bits() {
        warn_limited!(target: "spectator::registry", name, min, max, used_min = lo, used_max = hi,
            "percentile distribution summary range outside 0 ..= i64::MAX or NaN; adjusted");
    }
    if lo > hi {
        warn_limited!(target: "spectator::registry", name, min = lo, max = hi,
            "percentile distribution summary range has min > max; swapped");
        std::mem::swap(&mut lo, &mut hi);
    }
    (lo, hi)
}

impl PercentileSummaryCore {
    /// A core that clamps to `min ..= max` for bucketing, as made by [`bucket_range`].
    pub(crate) fn with_range(min: f64, max: f64) -> Self {
        // Never a panic in `clamp` when recording, whatever the caller passed.
        let (min, max) = if min <= max {
            (min, max)
        } else {
            (0.0, MAX_AMOUNT)
        };
        PercentileSummaryCore {
            summary: SummaryCore::default(),
            min,
            max,
        }
    }

    /// The bucketing range.
    pub(crate) fn range(&self) -> (f64, f64) {
        (self.min, self.max)
    }
}

impl Meter for PercentileSummaryCore {
    fn kind(&self) -> &'static str {
        PercentileDistributionSummary::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let stats = &self.summary.stats;
        poll.updated_if(stats.measure_with_buckets(
            id,
            Stat::TotalAmount,
            AS_RECORDED,
            BucketPrefix::Summary,
            out,
        ))
    }
}

impl MeterKind for PercentileDistributionSummary {
    const KIND: &'static str = "percentile distribution summary";
    type Core = PercentileSummaryCore;
    fn new_core(_: &Arc<dyn Clock>) -> PercentileSummaryCore {
        PercentileSummaryCore::default()
    }
    fn from_core(core: Arc<PercentileSummaryCore>) -> PercentileDistributionSummary {
        PercentileDistributionSummary { core }
    }
}

impl PercentileDistributionSummary {
    /// Records one amount; ignored when negative, NaN or infinite.
    #[inline]
    pub fn record(&self, amount: f64) {
        if !accepts(amount) {
            return;
        }
        // `as` saturates: amounts past u64::MAX land in the last bucket like i64::MAX.
        let clamped = amount.clamp(self.core.min, self.core.max);
        let index = buckets::index_of((clamped as u64).min(i64::MAX as u64));
        self.core
            .summary
            .stats
            .record_amount(amount, |b| b.bump(index));
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
        buckets::percentile(&self.core.summary.stats.bucket_counts(), p)
    }
}
