//! Atomic building blocks shared by the meters: f64 accumulators, an ordered-bits max, and
//! the writer/reader phaser that lets a poll take a consistent interval from multi-field
//! meters without ever blocking a writer.

use crate::sync::{spin_wait, AtomicU64 as PhaserWord};
use std::sync::atomic::{AtomicU64, Ordering};

/// An `f64` that can be added to from many threads (compare-and-swap on its bits).
#[derive(Debug, Default)]
pub(crate) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(crate) const fn zero() -> AtomicF64 {
        AtomicF64(AtomicU64::new(0)) // 0u64 is +0.0
    }

    #[inline]
    pub(crate) fn add(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed)
    }

    pub(crate) fn take(&self) -> f64 {
        f64::from_bits(self.0.swap(0, Ordering::Relaxed))
    }
}

/// Largest `f64` seen since the last `take`, with one `fetch_max` per update.
///
/// Values are mapped to `u64`s that sort like the floats; 0 means "nothing recorded" (it
/// sorts below every mapped value). NaN is never stored.
#[derive(Debug, Default)]
pub(crate) struct AtomicMaxF64(AtomicU64);

const SIGN: u64 = 1 << 63;

#[inline]
fn to_ordered(v: f64) -> u64 {
    let b = v.to_bits();
    if b & SIGN != 0 {
        !b
    } else {
        b | SIGN
    }
}

#[inline]
fn from_ordered(o: u64) -> f64 {
    f64::from_bits(if o & SIGN != 0 { o & !SIGN } else { !o })
}

impl AtomicMaxF64 {
    #[inline]
    pub(crate) fn update(&self, v: f64) {
        if !v.is_nan() {
            self.0.fetch_max(to_ordered(v), Ordering::Relaxed);
        }
    }

    /// The max so far, NaN when nothing was recorded.
    pub(crate) fn get(&self) -> f64 {
        match self.0.load(Ordering::Relaxed) {
            0 => f64::NAN,
            o => from_ordered(o),
        }
    }

    /// The max since the last take (NaN when nothing was recorded), resetting it.
    pub(crate) fn take(&self) -> f64 {
        match self.0.swap(0, Ordering::Relaxed) {
            0 => f64::NAN,
            o => from_ordered(o),
        }
    }
}

/// Splits a meter's updates into intervals (a writer/reader phaser, as in HdrHistogram).
///
/// A meter keeps two copies of its fields, one per phase. A writer announces itself on the
/// `start` word (whose top bit is the current phase), writes the copy of that phase, then
/// counts itself out on that phase's `end` word: two wait-free `fetch_add`s. A poll flips
/// the phase and waits until every writer that entered the old phase has left, after which
/// it owns the old copy alone and can read and reset all of its fields as one interval. So
/// a record is never split between two polls (count in one, max in the next), and writers
/// never wait. Polls must be serialised by the caller.
#[derive(Debug)]
pub(crate) struct Phaser {
    start: PhaserWord,
    end: [PhaserWord; 2],
}

/// Phase bit in `start`.
const PHASE: u64 = 1 << 63;

impl Phaser {
    pub(crate) fn new() -> Phaser {
        Phaser {
            start: PhaserWord::new(0),
            end: [PhaserWord::new(0), PhaserWord::new(0)],
        }
    }

    /// Runs a writer's update on the copy of the current phase (0 or 1).
    #[inline]
    pub(crate) fn write<R>(&self, update: impl FnOnce(usize) -> R) -> R {
        let s = self.start.fetch_add(1, Ordering::Acquire);
        let phase = (s >> 63) as usize;
        let r = update(phase);
        self.end[phase].fetch_add(1, Ordering::Release);
        r
    }

    /// The phase writers use now (for reads that need no consistency, like `count()`).
    #[inline]
    pub(crate) fn current(&self) -> usize {
        (self.start.load(Ordering::Relaxed) >> 63) as usize
    }

    /// Flips the phase and waits for the old phase's writers to finish; returns the old phase,
    /// whose copy the caller now owns until the next flip. Callers must not flip concurrently.
    pub(crate) fn flip(&self) -> usize {
        let old = self.current();
        let new = 1 - old;
        // Nobody writes the new phase yet, so its exit count can be reset.
        self.end[new].store(0, Ordering::Relaxed);
        let s = self
            .start
            .swap(if new == 1 { PHASE } else { 0 }, Ordering::AcqRel);
        let entered = s & !PHASE;
        let mut spins = 0u32;
        while self.end[old].load(Ordering::Acquire) != entered {
            // A writer is between its two counters: a few instructions, unless it was
            // descheduled, in which case let it run.
            spins = spins.saturating_add(1);
            spin_wait(spins);
        }
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_mapping_sorts_like_floats() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.0,
            2.5,
            f64::MAX,
            f64::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(to_ordered(w[0]) <= to_ordered(w[1]), "{w:?}");
            assert!(to_ordered(w[0]) > 0);
        }
        for v in vals {
            assert_eq!(from_ordered(to_ordered(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn max_ignores_nan_and_resets() {
        let m = AtomicMaxF64::default();
        assert!(m.take().is_nan());
        m.update(f64::NAN);
        assert!(m.get().is_nan());
        m.update(-3.0);
        m.update(-5.0);
        assert_eq!(m.get(), -3.0);
        assert_eq!(m.take(), -3.0);
        assert!(m.take().is_nan());
    }

    #[test]
    fn f64_add_and_take() {
        let a = AtomicF64::zero();
        a.add(1.5);
        a.add(2.0);
        assert_eq!(a.load(), 3.5);
        assert_eq!(a.take(), 3.5);
        assert_eq!(a.load(), 0.0);
    }

    #[test]
    fn phaser_hands_over_complete_intervals() {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        let p = Arc::new(Phaser::new());
        let slots = Arc::new([
            [AtomicU64::new(0), AtomicU64::new(0)],
            [AtomicU64::new(0), AtomicU64::new(0)],
        ]);
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (p, slots) = (p.clone(), slots.clone());
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        p.write(|ph| {
                            slots[ph][0].fetch_add(1, Ordering::Relaxed);
                            slots[ph][1].fetch_add(2, Ordering::Relaxed);
                        });
                    }
                })
            })
            .collect();
        let mut total = 0;
        for _ in 0..200 {
            let old = p.flip();
            let a = slots[old][0].swap(0, Ordering::Relaxed);
            let b = slots[old][1].swap(0, Ordering::Relaxed);
            // Both fields of every record land in the same interval.
            assert_eq!(b, 2 * a);
            total += a;
        }
        for w in writers {
            w.join().unwrap();
        }
        for _ in 0..2 {
            let old = p.flip();
            total += slots[old][0].swap(0, Ordering::Relaxed);
            slots[old][1].swap(0, Ordering::Relaxed);
        }
        assert_eq!(total, 200_000);
    }
}
