//! The four statistics shared by timers and distribution summaries, kept per interval.

use super::atomic::{AtomicF64, AtomicMaxF64, Phaser};
use std::sync::atomic::{AtomicU64, Ordering};

/// One interval's worth of a timer or summary.
#[derive(Debug, Default)]
struct Interval {
    count: AtomicU64,
    /// Timers: integer nanoseconds (exact); summaries: unused.
    total_ns: AtomicU64,
    /// Summaries: the sum of amounts; timers: unused.
    total: AtomicF64,
    /// Sum of squares: ns² for timers, amount² for summaries.
    total_sq: AtomicF64,
    max: AtomicMaxF64,
}

/// What a poll takes from a [`Stats`]: one complete interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Taken {
    pub count: u64,
    /// Nanoseconds for timers, amount for summaries.
    pub total: f64,
    pub total_sq: f64,
    pub max: f64,
}

/// Count, total, total of squares and max, double-buffered by a [`Phaser`] so that a poll
/// takes whole records only (a record's count and its max always land in the same poll).
#[derive(Debug)]
pub(crate) struct Stats {
    phaser: Phaser,
    intervals: [Interval; 2],
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            phaser: Phaser::new(),
            intervals: Default::default(),
        }
    }
}

impl Stats {
    /// Records a duration in nanoseconds; `extra` runs inside the same interval with its
    /// phase (used for percentile buckets).
    #[inline]
    pub(crate) fn record_ns(&self, ns: u64, extra: impl FnOnce(usize)) {
        self.phaser.write(|phase| {
            let i = &self.intervals[phase];
            i.total_ns.fetch_add(ns, Ordering::Relaxed);
            let f = ns as f64;
            i.total_sq.add(f * f);
            i.max.update(f);
            extra(phase);
            i.count.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Records an amount (finite, >= 0: checked by the caller).
    #[inline]
    pub(crate) fn record_amount(&self, v: f64, extra: impl FnOnce(usize)) {
        self.phaser.write(|phase| {
            let i = &self.intervals[phase];
            i.total.add(v);
            i.total_sq.add(v * v);
            i.max.update(v);
            extra(phase);
            i.count.fetch_add(1, Ordering::Relaxed);
        })
    }

    /// Takes the interval since the last take; `extra` reads the retired phase's other
    /// fields while no writer can touch them.
    pub(crate) fn take(&self, extra: impl FnOnce(usize)) -> Taken {
        let old = self.phaser.flip();
        let i = &self.intervals[old];
        let taken = Taken {
            count: i.count.swap(0, Ordering::Relaxed),
            total: i.total_ns.swap(0, Ordering::Relaxed) as f64 + i.total.take(),
            total_sq: i.total_sq.take(),
            max: i.max.take(),
        };
        extra(old);
        taken
    }

    /// The phase writers currently use.
    pub(crate) fn current_phase(&self) -> usize {
        self.phaser.current()
    }

    /// Records since the last poll.
    pub(crate) fn count(&self) -> u64 {
        self.intervals[self.phaser.current()]
            .count
            .load(Ordering::Relaxed)
    }

    /// Total nanoseconds since the last poll (timers).
    pub(crate) fn total_ns(&self) -> u64 {
        self.intervals[self.phaser.current()]
            .total_ns
            .load(Ordering::Relaxed)
    }

    /// Total amount since the last poll (summaries).
    pub(crate) fn total_amount(&self) -> f64 {
        self.intervals[self.phaser.current()].total.load()
    }
}
