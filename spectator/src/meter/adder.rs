//! Striping across threads: each thread's home cell index, and [`Adder`], an `f64` sum that
//! stays one atomic while a single thread adds to it and spreads over per-thread cells once
//! threads collide on it (the shape of Java's `DoubleAdder`).
//!
//! # Why not always one atomic, or always cells
//!
//! One atomic that several cores add to moves its cache line from core to core at every add:
//! two threads on one counter deliver less than one thread alone. Cells on their own cache
//! lines fix that, but cost their memory (128 bytes each) and a thread-local read on every
//! add. Most counters are only ever added to by one thread at a time, so an [`Adder`] starts
//! as one atomic (`base`) and allocates its cells the first time a compare-and-swap on `base`
//! fails because another thread added in between. From then on every add goes to the adding
//! thread's home cell.
//!
//! # Nothing lost, nothing counted twice
//!
//! Every add lands whole in exactly one atomic (`base` or one cell) through one successful
//! compare-and-swap, and [`Adder::take`] swaps each atomic with 0: an add is either before
//! that swap in the atomic's modification order (taken now) or after it (left for the next
//! take). The model check in `loom_tests.rs` runs this code over every interleaving.

use crate::sync::{AtomicPtr, AtomicU64, Ordering};
use std::ptr;

/// Most cells per striped meter (an [`Adder`], or a timer's `Stats`).
pub(crate) const STRIPES: usize = 4;

#[cfg(not(all(spectator_loom, test)))]
mod probe {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};

    thread_local! {
        /// The calling thread's home cell index (`usize::MAX` until first asked for).
        static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    /// Hands out home cells round-robin, so that threads started one after the other (a
    /// pool) get different cells.
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    #[inline]
    pub(super) fn home() -> usize {
        HOME.try_with(|h| {
            let i = h.get();
            if i < super::STRIPES {
                return i;
            }
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % super::STRIPES;
            h.set(i);
            i
        })
        .unwrap_or(0) // thread-locals already destroyed: any cell is correct
    }

    pub(super) fn set_home(i: usize) {
        let _ = HOME.try_with(|h| h.set(i));
    }
}

/// Under loom every model thread runs on one OS thread, and every execution of a model must
/// make the same choices: the home index lives in loom's per-model-thread storage, handed out
/// by a counter that loom resets with each execution.
#[cfg(all(spectator_loom, test))]
mod probe {
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use std::cell::Cell;

    loom::thread_local! {
        static HOME: Cell<usize> = Cell::new(usize::MAX);
    }

    loom::lazy_static! {
        static ref NEXT: AtomicUsize = AtomicUsize::new(0);
    }

    pub(super) fn home() -> usize {
        HOME.with(|h| {
            let i = h.get();
            if i < super::STRIPES {
                return i;
            }
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % super::STRIPES;
            h.set(i);
            i
        })
    }

    pub(super) fn set_home(i: usize) {
        HOME.with(|h| h.set(i));
    }
}

/// The calling thread's home cell index (`< STRIPES`). Threads get homes round-robin and keep
/// them until a collision moves them ([`set_home`]); one index serves every striped meter.
#[inline]
pub(crate) fn home() -> usize {
    probe::home()
}

/// Makes cell `i` the calling thread's home: its old one was busy with another thread.
pub(crate) fn set_home(i: usize) {
    probe::set_home(i)
}

/// One cell of an [`Adder`]: an `f64` sum (its bits).
#[repr(align(128))] // its own cache lines (and their adjacent-line prefetch pair)
struct Cell(AtomicU64);

type Cells = [Cell; STRIPES];

/// `bits` read as an `f64`, plus `v`, as bits.
#[inline]
fn plus(bits: u64, v: f64) -> u64 {
    (f64::from_bits(bits) + v).to_bits()
}

/// An `f64` sum that threads add to and a poll takes (see the module docs): one atomic while
/// uncontended, [`STRIPES`] cache-line-sized cells once threads collide on it. 16 bytes until
/// then.
pub(crate) struct Adder {
    /// The sum (`f64` bits; 0 is +0.0) of the adds made while no cells existed, and of the
    /// ones that raced the allocation of the cells.
    base: AtomicU64,
    /// Null until the first collision; then a `Box<Cells>`, never replaced until drop.
    cells: AtomicPtr<Cells>,
}

impl Adder {
    /// A sum of 0, without cells.
    pub(crate) fn new() -> Adder {
        Adder {
            base: AtomicU64::new(0),
            cells: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Adds `v`. Uncontended, one compare-and-swap on `base`.
    #[inline]
    pub(crate) fn add(&self, v: f64) {
        let cells = self.cells.load(Ordering::Acquire);
        if cells.is_null() {
            let cur = self.base.load(Ordering::Relaxed);
            // Strong: a weak one could fail spuriously and stripe an uncontended adder.
            match self.base.compare_exchange(
                cur,
                plus(cur, v),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => {
                    if self.add_after_failed_base(actual, v) {
                        return;
                    }
                }
            }
        }
        self.add_striped(v);
    }

    /// The compare-and-swap on `base` failed, finding `actual`. A 0 there is a poll's reset
    /// (adds only ever raise the sum): retry on `base` rather than allocate cells for an
    /// adder with one writer. Returns whether the add is done.
    #[cold]
    #[inline(never)]
    fn add_after_failed_base(&self, mut actual: u64, v: f64) -> bool {
        while actual == 0 {
            match self
                .base
                .compare_exchange(0, plus(0, v), Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(a) => actual = a,
            }
        }
        false
    }

    /// Adds `v` to the calling thread's home cell, allocating the cells if needed. A thread
    /// whose compare-and-swap fails there shares the cell with another thread: it moves on to
    /// the next cell and makes that its home. (The model checks call it directly, as after a
    /// collision on `base`.)
    #[inline(never)]
    pub(crate) fn add_striped(&self, v: f64) {
        let cells = self.cells_or_install();
        let home = home();
        let mut i = home;
        loop {
            let c = &cells[i].0;
            let cur = c.load(Ordering::Relaxed);
            if c.compare_exchange_weak(cur, plus(cur, v), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                if i != home {
                    set_home(i);
                }
                return;
            }
            i = (i + 1) % STRIPES;
        }
    }

    /// The cells, if allocated.
    #[inline]
    fn cells(&self) -> Option<&Cells> {
        let p = self.cells.load(Ordering::Acquire);
        // SAFETY: a non-null pointer came from `Box::into_raw` in `cells_or_install`, was
        // published with a release CAS that the acquire load above pairs with, and is only
        // freed by `drop`, which has `&mut self`.
        unsafe { p.as_ref() }
    }

    /// The cells, allocated by the first thread to get here; a thread that loses the race
    /// frees its own (it never wrote to them) and uses the winner's.
    fn cells_or_install(&self) -> &Cells {
        if let Some(cells) = self.cells() {
            return cells;
        }
        let fresh = Box::into_raw(Box::new(std::array::from_fn(|_| Cell(AtomicU64::new(0)))));
        match self.cells.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just published; freed only by `drop`.
            Ok(_) => unsafe { &*fresh },
            Err(winner) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was never shared;
                // `winner` is non-null (the CAS expected null), published like `fresh` would
                // have been, and freed only by `drop`.
                unsafe {
                    drop(Box::from_raw(fresh));
                    &*winner
                }
            }
        }
    }

    /// The sum since the last take (a peek: adds racing it may or may not be in it).
    pub(crate) fn sum(&self) -> f64 {
        let mut sum = f64::from_bits(self.base.load(Ordering::Relaxed));
        for c in self.cells().into_iter().flatten() {
            sum += f64::from_bits(c.0.load(Ordering::Relaxed));
        }
        sum
    }

    /// Takes the sum since the previous take, resetting it (see the module docs for why no
    /// concurrent add is lost or taken twice).
    pub(crate) fn take(&self) -> f64 {
        let mut sum = f64::from_bits(self.base.swap(0, Ordering::Relaxed));
        for c in self.cells().into_iter().flatten() {
            sum += f64::from_bits(c.0.swap(0, Ordering::Relaxed));
        }
        sum
    }

    /// Whether the cells were allocated (threads collided on this adder).
    #[cfg(test)]
    pub(crate) fn is_striped(&self) -> bool {
        self.cells().is_some()
    }
}

impl Default for Adder {
    fn default() -> Adder {
        Adder::new()
    }
}

impl Drop for Adder {
    fn drop(&mut self) {
        let p = self.cells.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: from `Box::into_raw` in `cells_or_install`; `&mut self` means no other
            // reference to the cells remains, and the pointer is never freed elsewhere.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

impl std::fmt::Debug for Adder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adder")
            .field("sum", &self.sum())
            .field("striped", &self.cells().is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_thread_stays_on_the_base_atomic() {
        let a = Adder::new();
        for _ in 0..1000 {
            a.add(1.0);
        }
        a.add(0.5);
        assert_eq!(a.sum(), 1000.5);
        assert_eq!(a.take(), 1000.5);
        assert_eq!(a.take(), 0.0);
        a.add(2.0);
        assert_eq!(a.sum(), 2.0);
        assert!(!a.is_striped());
    }

    #[test]
    fn striped_adds_sum_with_the_base_and_reset() {
        let a = Adder::new();
        a.add(1.0);
        a.add_striped(2.0); // as after a collision: allocates the cells
        assert!(a.is_striped());
        a.add(4.0); // goes to a cell now
        assert_eq!(a.base.load(Ordering::Relaxed), 1f64.to_bits());
        assert_eq!(a.sum(), 7.0);
        assert_eq!(a.take(), 7.0);
        assert_eq!(a.sum(), 0.0);
        a.add(8.0);
        assert_eq!(a.take(), 8.0);
    }

    #[test]
    fn racing_threads_lose_nothing_and_take_nothing_twice() {
        let a = Arc::new(Adder::new());
        const PER_THREAD: u64 = 200_000;
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for _ in 0..PER_THREAD {
                        a.add(1.0);
                    }
                })
            })
            .collect();
        let mut taken = 0.0;
        while !writers.iter().all(|w| w.is_finished()) {
            taken += a.take();
            std::thread::yield_now();
        }
        for w in writers {
            w.join().unwrap();
        }
        taken += a.take();
        assert_eq!(taken, (2 * PER_THREAD) as f64);
    }
}
