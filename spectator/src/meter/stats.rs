//! The four statistics shared by timers and distribution summaries, kept per interval.
//!
//! # Layout: striped cells, each claimed for a whole record
//!
//! A [`Stats`] holds up to [`STRIPES`] cells, each on its own cache lines and allocated the
//! first time a thread records into it. A thread records into its "home" cell (threads are
//! spread over the cells round-robin), so threads recording into one meter at once do not
//! bounce each other's cache lines.
//!
//! A record claims its cell with one compare-and-swap, updates the cell's fields with plain
//! loads and stores, and releases the cell with a plain store: one atomic read-modify-write
//! per record whatever the number of fields (the percentile bucket included). A poll claims
//! each cell in turn, reads and resets it, and releases it. So:
//! - a record is never split between two polls: all its fields are written while its cell is
//!   claimed, and a poll takes a cell's fields while holding the claim;
//! - nothing is lost or counted twice: every record lands in exactly one cell, and each poll
//!   takes what the cells hold.
//!
//! A writer that finds its home cell claimed (by the poll, or by another thread sharing the
//! cell) moves on to the next cell, allocating it if needed, and makes the one it got its new
//! home. A writer only waits when every cell is claimed at once, which takes as many threads
//! stopped in the middle of their few-instruction record as there are cells. A poll waits at
//! most 10 ms for a claimed cell, then leaves it (and its whole records) to the next poll: a
//! writer descheduled mid-record, or one that vanished in a fork, never stalls publishing.

use super::adder::STRIPES;
use super::adder::{home, set_home};
use super::atomic::{from_ordered, to_ordered};
use super::percentile_buckets::LENGTH;
use super::push_stat;
use crate::id::{BucketPrefix, Id, Stat};
use crate::measurement::{Measurement, Op};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// The unit conversion from what is recorded to what is reported.
#[derive(Clone, Copy)]
pub(crate) struct Scale {
    unit: f64,
    squared: f64,
}

/// Timers record nanoseconds and report seconds (and seconds²).
pub(crate) const NANOS_TO_SECONDS: Scale = Scale {
    unit: 1e-9,
    squared: 1e-18,
};

/// Summaries report what they record.
pub(crate) const AS_RECORDED: Scale = Scale {
    unit: 1.0,
    squared: 1.0,
};

/// Per-cell data besides the four statistics: nothing, or percentile buckets.
pub(crate) trait Extra: Send + Sync + 'static {
    fn new() -> Self;
}

impl Extra for () {
    fn new() {}
}

/// Percentile bucket counts of one cell. Written only while the cell is claimed.
pub(crate) struct Buckets([AtomicU64; LENGTH]);

impl Extra for Buckets {
    fn new() -> Buckets {
        Buckets(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Buckets {
    /// Counts one record in bucket `index` (the cell is claimed).
    #[inline]
    pub(crate) fn bump(&self, index: usize) {
        let b = &self.0[index];
        b.store(b.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Adds the counts to `into` and resets them (the cell is claimed).
    pub(crate) fn take_into(&self, into: &mut [u64; LENGTH]) {
        for (c, b) in into.iter_mut().zip(&self.0) {
            let n = b.load(Ordering::Relaxed);
            if n != 0 {
                *c += n;
                b.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Adds the counts to `into` (a peek; no claim needed).
    pub(crate) fn add_to(&self, into: &mut [u64; LENGTH]) {
        for (c, b) in into.iter_mut().zip(&self.0) {
            *c += b.load(Ordering::Relaxed);
        }
    }
}

impl Stats<Buckets> {
    /// The bucket counts since the last poll, over all cells (a peek).
    pub(crate) fn bucket_counts(&self) -> [u64; LENGTH] {
        let mut counts = [0u64; LENGTH];
        self.peek_extra(|b| b.add_to(&mut counts));
        counts
    }

    /// [`Stats::measure`] plus, for each bucket used since the last poll, its count under
    /// `statistic=percentile, percentile=<prefix><index as 4 hex digits>`.
    pub(crate) fn measure_with_buckets(
        &self,
        id: &Id,
        total: Stat,
        scale: Scale,
        prefix: BucketPrefix,
        out: &mut Vec<Measurement>,
    ) -> bool {
        let mut counts = [0u64; LENGTH];
        let active = self.measure(id, total, scale, |b| b.take_into(&mut counts), out);
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 {
                out.push(Measurement {
                    id: id.with_bucket(prefix, i),
                    op: Op::Add,
                    value: c as f64,
                });
            }
        }
        active
    }
}

/// One cell: the statistics of the records it took since the last poll.
#[repr(align(128))] // its own cache lines (and their adjacent-line prefetch pair)
struct Stripe<X> {
    claimed: AtomicBool,
    count: AtomicU64,
    /// Timers: integer nanoseconds (exact); summaries: unused.
    total_ns: AtomicU64,
    /// Summaries: the sum of amounts (`f64` bits); timers: unused.
    total: AtomicU64,
    /// Sum of squares (`f64` bits): ns² for timers, amount² for summaries.
    total_sq: AtomicU64,
    /// Largest value, mapped by `to_ordered`; 0 when nothing was recorded.
    max: AtomicU64,
    extra: X,
}

impl<X: Extra> Stripe<X> {
    fn new() -> Stripe<X> {
        Stripe {
            claimed: AtomicBool::new(false),
            count: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            total: AtomicU64::new(0),
            total_sq: AtomicU64::new(0),
            max: AtomicU64::new(0),
            extra: X::new(),
        }
    }

    #[inline]
    fn try_claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    fn release(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    /// Adds `v` to an `f64` field (the cell is claimed).
    #[inline]
    fn add_f64(field: &AtomicU64, v: f64) {
        let cur = f64::from_bits(field.load(Ordering::Relaxed));
        field.store((cur + v).to_bits(), Ordering::Relaxed);
    }

    /// Common part of a record (the cell is claimed).
    #[inline]
    fn count_and_max(&self, v: f64) {
        let o = to_ordered(v);
        if o > self.max.load(Ordering::Relaxed) {
            self.max.store(o, Ordering::Relaxed);
        }
        Self::add_f64(&self.total_sq, v * v);
        self.count
            .store(self.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
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

/// Longest a poll waits for a writer to release a cell before leaving it for the next poll.
const POLL_CLAIM_PATIENCE: std::time::Duration = std::time::Duration::from_millis(10);

/// Claims `s` for a poll, waiting at most [`POLL_CLAIM_PATIENCE`] for a writer to release it.
fn claim_for_poll<X: Extra>(s: &Stripe<X>) -> bool {
    // A writer holds a cell for a few instructions: spin briefly, then yield so that a
    // descheduled writer can run, then give up.
    for _ in 0..64 {
        if s.try_claim() {
            return true;
        }
        std::hint::spin_loop();
    }
    let start = std::time::Instant::now();
    while start.elapsed() < POLL_CLAIM_PATIENCE {
        if s.try_claim() {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// Count, total, total of squares and max of the records since the last poll, in striped
/// cells (see the module docs).
pub(crate) struct Stats<X = ()> {
    stripes: [OnceLock<Box<Stripe<X>>>; STRIPES],
}

impl<X: Extra> std::fmt::Debug for Stats<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("count", &self.count())
            .field(
                "cells",
                &self.stripes.iter().filter(|s| s.get().is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

impl<X: Extra> Default for Stats<X> {
    fn default() -> Stats<X> {
        Stats {
            stripes: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl<X: Extra> Stats<X> {
    #[inline]
    fn stripe(&self, i: usize) -> &Stripe<X> {
        match self.stripes[i].get() {
            Some(s) => s,
            None => self.new_stripe(i),
        }
    }

    #[cold]
    #[inline(never)]
    fn new_stripe(&self, i: usize) -> &Stripe<X> {
        self.stripes[i].get_or_init(|| Box::new(Stripe::new()))
    }

    /// Runs `update` on a claimed cell.
    #[inline]
    fn write(&self, update: impl FnOnce(&Stripe<X>)) {
        let home = home();
        let s = self.stripe(home);
        if s.try_claim() {
            update(s);
            s.release();
        } else {
            self.write_elsewhere(home, update);
        }
    }

    /// The home cell was claimed: take the next free one, and make it home.
    #[cold]
    #[inline(never)]
    fn write_elsewhere(&self, home: usize, update: impl FnOnce(&Stripe<X>)) {
        let mut spins = 0u32;
        loop {
            for k in 1..=STRIPES {
                let i = (home + k) % STRIPES;
                let s = self.stripe(i);
                if s.try_claim() {
                    update(s);
                    s.release();
                    if i != home {
                        set_home(i);
                    }
                    return;
                }
            }
            // Every cell is claimed: their holders are in the middle of a few instructions.
            spins += 1;
            if spins < 16 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Records a duration in nanoseconds; `extra` runs on the same claimed cell (used for
    /// percentile buckets).
    #[inline]
    pub(crate) fn record_ns(&self, ns: u64, extra: impl FnOnce(&X)) {
        self.write(|s| {
            s.total_ns.store(
                s.total_ns.load(Ordering::Relaxed).wrapping_add(ns),
                Ordering::Relaxed,
            );
            s.count_and_max(ns as f64);
            extra(&s.extra);
        })
    }

    /// Records an amount (finite, >= 0: checked by the caller).
    #[inline]
    pub(crate) fn record_amount(&self, v: f64, extra: impl FnOnce(&X)) {
        self.write(|s| {
            Stripe::<X>::add_f64(&s.total, v);
            s.count_and_max(v);
            extra(&s.extra);
        })
    }

    /// Takes the records since the last take; `extra` reads (and resets) each cell's other
    /// fields while the cell is claimed. Polls must be serialised by the caller.
    pub(crate) fn take(&self, mut extra: impl FnMut(&X)) -> Taken {
        let (mut count, mut total_ns, mut total, mut total_sq, mut max) = (0, 0u64, 0.0, 0.0, 0);
        for s in self.stripes.iter().filter_map(OnceLock::get) {
            if !claim_for_poll(s) {
                // Its holder has not finished for a long while (descheduled under heavy load,
                // or a thread that does not exist any more after a fork): leave the cell, and
                // its whole records, to a later poll rather than hold this one up.
                continue;
            }
            count += s.count.load(Ordering::Relaxed);
            total_ns = s.total_ns.load(Ordering::Relaxed).wrapping_add(total_ns);
            total += f64::from_bits(s.total.load(Ordering::Relaxed));
            total_sq += f64::from_bits(s.total_sq.load(Ordering::Relaxed));
            max = max.max(s.max.load(Ordering::Relaxed));
            for field in [&s.count, &s.total_ns, &s.total, &s.total_sq, &s.max] {
                field.store(0, Ordering::Relaxed); // 0 is +0.0 too
            }
            extra(&s.extra);
            s.release();
        }
        Taken {
            count,
            total: total_ns as f64 + total,
            total_sq,
            max: if max == 0 {
                f64::NAN
            } else {
                from_ordered(max)
            },
        }
    }

    /// Runs `f` on every cell's extra data, without claiming (for peeks).
    pub(crate) fn peek_extra(&self, mut f: impl FnMut(&X)) {
        for s in self.stripes.iter().filter_map(OnceLock::get) {
            f(&s.extra);
        }
    }

    /// Takes the interval's records and pushes the four statistics under `ids` (`count`,
    /// the total, `totalOfSquares`, `max`, in that order), scaled to the reported unit.
    /// `extra` reads each cell's other fields as in [`take`](Stats::take). Returns whether
    /// anything was recorded: an idle meter reports nothing, not even `max`.
    pub(crate) fn measure(
        &self,
        id: &Id,
        total: Stat,
        scale: Scale,
        extra: impl FnMut(&X),
        out: &mut Vec<Measurement>,
    ) -> bool {
        let t = self.take(extra);
        if t.count == 0 {
            return false;
        }
        push_stat(out, id, Stat::Count, t.count as f64);
        push_stat(out, id, total, t.total * scale.unit);
        push_stat(out, id, Stat::TotalOfSquares, t.total_sq * scale.squared);
        push_stat(out, id, Stat::Max, t.max * scale.unit);
        true
    }

    fn sum(&self, field: impl Fn(&Stripe<X>) -> u64) -> u64 {
        self.stripes
            .iter()
            .filter_map(OnceLock::get)
            .map(|s| field(s))
            .fold(0, u64::wrapping_add)
    }

    /// Records since the last poll.
    pub(crate) fn count(&self) -> u64 {
        self.sum(|s| s.count.load(Ordering::Relaxed))
    }

    /// Total nanoseconds since the last poll (timers).
    pub(crate) fn total_ns(&self) -> u64 {
        self.sum(|s| s.total_ns.load(Ordering::Relaxed))
    }

    /// Total amount since the last poll (summaries).
    pub(crate) fn total_amount(&self) -> f64 {
        self.stripes
            .iter()
            .filter_map(OnceLock::get)
            .map(|s| f64::from_bits(s.total.load(Ordering::Relaxed)))
            .fold(0.0, |a, b| a + b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_cell_held_forever_delays_its_records_but_never_blocks_the_poll() {
        let stats: Stats = Stats::default();
        stats.record_ns(5, |_| {});
        let cell = stats.stripes.iter().find_map(OnceLock::get).unwrap();
        // As if its writer stopped mid-record (descheduled, or gone after a fork).
        assert!(cell.try_claim());
        let start = std::time::Instant::now();
        let taken = stats.take(|_| {});
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(taken.count, 0);
        assert!(taken.max.is_nan());
        // Other writers move on to another cell meanwhile, and the held cell's records
        // come out whole at the first poll after it is released.
        stats.record_ns(7, |_| {});
        assert_eq!(stats.take(|_| {}).count, 1);
        cell.release();
        let taken = stats.take(|_| {});
        assert_eq!((taken.count, taken.total, taken.max), (1, 5.0, 5.0));
    }

    #[test]
    fn polls_take_complete_records_from_concurrent_writers() {
        // Every record puts 1 in count, its value in total and max, and 1 in the bucket
        // `value % 4`: a torn record would show a count without its bucket or its max.
        let stats: Arc<Stats<Buckets>> = Arc::default();
        let writers: Vec<_> = (0..3u64)
            .map(|w| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for i in 0..100_000u64 {
                        let v = 1 + (i + w) % 4;
                        stats.record_ns(v, |b| b.bump((v % 4) as usize));
                    }
                })
            })
            .collect();
        let (mut count, mut total) = (0, 0.0);
        let poll = |count: &mut u64, total: &mut f64| {
            let mut buckets = [0u64; LENGTH];
            let t = stats.take(|b| b.take_into(&mut buckets));
            assert_eq!(buckets[..4].iter().sum::<u64>(), t.count);
            assert_eq!(t.count > 0, !t.max.is_nan());
            if t.count > 0 {
                assert!((1.0..=4.0).contains(&t.max), "{t:?}");
                assert!((t.count as f64..=4.0 * t.count as f64).contains(&t.total));
            }
            *count += t.count;
            *total += t.total;
        };
        for _ in 0..200 {
            poll(&mut count, &mut total);
            std::thread::yield_now();
        }
        for w in writers {
            w.join().unwrap();
        }
        poll(&mut count, &mut total);
        assert_eq!(count, 300_000);
        assert_eq!(total, 750_000.0); // each writer: 25_000 each of 1, 2, 3, 4
        assert_eq!(stats.count(), 0);
    }

    #[test]
    fn a_writer_finds_another_cell_when_its_home_is_claimed() {
        let stats: Stats = Stats::default();
        stats.record_ns(5, |_| {});
        let home = home();
        let s = stats.stripe(home);
        assert!(s.try_claim());
        stats.record_ns(7, |_| {}); // lands elsewhere, without waiting
        assert_ne!(super::home(), home);
        s.release();
        assert_eq!(stats.count(), 2);
        assert_eq!(stats.total_ns(), 12);
        let t = stats.take(|_| {});
        assert_eq!((t.count, t.total, t.total_sq, t.max), (2, 12.0, 74.0, 7.0));
        assert!(stats.take(|_| {}).max.is_nan());
    }
}
