//! Striping across threads: each thread's home cell index and token, and [`Adder`], a
//! counter's sum that stays one atomic while a single thread adds to it and spreads over
//! per-thread cells once threads collide on it (the shape of Java's `LongAdder` and
//! `DoubleAdder`).
//!
//! # Why not always one atomic, or always cells
//!
//! One atomic that several cores add to moves its cache line from core to core at every add:
//! two threads on one counter deliver less than one thread alone. Cells on their own cache
//! lines fix that, but cost their memory (128 bytes each) and a thread-local read on every
//! add. Most counters are only ever added to by one thread at a time, so an [`Adder`] starts
//! as one atomic per lane (its base) and allocates its cells the first time threads collide
//! on it. From then on every add goes to the adding thread's home cell.
//!
//! # Two lanes, and who owns the base
//!
//! An adder keeps two sums ("lanes"): whole increments as an integer (the count lane) and
//! other amounts as `f64` bits (the sum lane). A take adds them up.
//!
//! A sum add is a compare-and-swap on the base; one that fails because another thread added
//! in between is the collision that allocates the cells.
//!
//! A count add, the hot one (`increment()`, `#[counted]`), is a `fetch_add`, which cannot
//! fail and so cannot notice another thread. The adder's `state` word names the thread that
//! may add that way: its token (odd; see [`token`]). Another thread first makes the base its
//! own with a compare-and-swap on `state`, then adds with a compare-and-swap on the base: if
//! either fails, a thread added or took the base at the same moment, and the cells are
//! allocated. Threads that take turns (a pool serving one request each) hand the base over
//! without striping it; threads that add at the same time stripe it.
//!
//! Striped, `state` holds the cells instead (a pointer, so even). Each cell names the thread
//! that adds to its count with `fetch_add` the same way (its `claim`). A thread takes the
//! claim of its home cell; if another thread held it, it adds with a compare-and-swap, and
//! if that fails (the other thread is adding there too) it adds with `fetch_add` and moves
//! its home to the next cell. So active threads spread over the cells, and the claim of a
//! thread that stopped adding, or ended, is simply taken over.
//!
//! # Nothing lost, nothing counted twice
//!
//! Every add lands whole in exactly one atomic (a lane's base or one cell's) through one
//! successful read-modify-write (a `fetch_add`, or a compare-and-swap retried until it
//! succeeds), and [`Adder::take`] swaps each atomic with 0: an add is either before that
//! swap in the atomic's modification order (taken now) or after it (left for the next take).
//! Ownership and claims only choose which atomic and which instruction; they never make an
//! add wait, fail or go elsewhere once made. The model check in `loom_tests.rs` runs this
//! code over every interleaving.

use crate::sync::{AtomicPtr, AtomicU64, Ordering};
use std::ptr;

/// Most cells per striped meter (an [`Adder`], or a timer's `Stats`).
pub(crate) const STRIPES: usize = 4;

#[cfg(not(all(spectator_loom, test)))]
mod probe {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    thread_local! {
        /// The calling thread's home cell index (`usize::MAX` until first asked for).
        static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
        /// The calling thread's token (0 until first asked for).
        static TOKEN: Cell<u64> = const { Cell::new(0) };
    }

    /// Hands out home cells round-robin, so that threads started one after the other (a
    /// pool) get different cells.
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    /// The tokens handed out so far.
    static TOKENS: AtomicU64 = AtomicU64::new(0);

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

    #[inline]
    pub(super) fn token() -> u64 {
        TOKEN
            .try_with(|t| match t.get() {
                0 => {
                    let token = TOKENS.fetch_add(1, Ordering::Relaxed) << 1 | 1;
                    t.set(token);
                    token
                }
                token => token,
            })
            .unwrap_or(0)
    }
}

/// Under loom every model thread runs on one OS thread, and every execution of a model must
/// make the same choices: the home index and the token live in loom's per-model-thread
/// storage, handed out by counters that loom resets with each execution.
#[cfg(all(spectator_loom, test))]
mod probe {
    use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::cell::Cell;

    loom::thread_local! {
        static HOME: Cell<usize> = Cell::new(usize::MAX);
        static TOKEN: Cell<u64> = Cell::new(0);
    }

    loom::lazy_static! {
        static ref NEXT: AtomicUsize = AtomicUsize::new(0);
        static ref TOKENS: AtomicU64 = AtomicU64::new(0);
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

    pub(super) fn token() -> u64 {
        TOKEN.with(|t| match t.get() {
            0 => {
                let token = TOKENS.fetch_add(1, Ordering::Relaxed) << 1 | 1;
                t.set(token);
                token
            }
            token => token,
        })
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

/// The calling thread's token: odd, and never the token of another thread of the process
/// (0 while the thread's thread-locals are being destroyed, which owns nothing).
#[inline]
fn token() -> u64 {
    probe::token()
}

/// One cell of an [`Adder`]: a part of each lane's sum.
#[repr(align(128))] // its own cache lines (and their adjacent-line prefetch pair)
pub(crate) struct Cell {
    count: AtomicU64,
    sum: AtomicU64,
    /// The token of the thread whose home this cell is, which adds to `count` with
    /// `fetch_add` (0: none).
    claim: AtomicU64,
}

type Cells = [Cell; STRIPES];

/// The bits of the `f64` sum `bits` plus `v`.
#[inline]
fn plus(bits: u64, v: f64) -> u64 {
    (f64::from_bits(bits) + v).to_bits()
}

/// Whether `state` points to cells (a token is odd, a `Box<Cells>` even and non-null).
#[inline]
fn is_striped(state: *mut Cells) -> bool {
    !state.is_null() && state as usize & 1 == 0
}

/// A thread's token as a `state` value (never dereferenced: it is odd).
#[inline]
fn owned_by(token: u64) -> *mut Cells {
    token as usize as *mut Cells
}

/// A sum that threads add to and a poll takes (see the module docs): one atomic per lane
/// while uncontended, [`STRIPES`] cache-line-sized cells once threads collide on it. 24 bytes
/// until then.
pub(crate) struct Adder {
    /// The count lane's base: the increments made while no cells existed, and those that
    /// raced the cells' allocation.
    count: AtomicU64,
    /// The sum lane's base (`f64` bits; 0 is +0.0).
    sum: AtomicU64,
    /// Null: no thread has incremented yet. Odd: the token of the thread that increments the
    /// base with `fetch_add`. Otherwise the cells (a `Box<Cells>`, never replaced until drop).
    state: AtomicPtr<Cells>,
}

impl Adder {
    /// A sum of 0, without cells.
    pub(crate) fn new() -> Adder {
        Adder {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            state: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The cells that `state`, read from this adder's `state` with an acquire load, points
    /// to, if it does.
    #[inline]
    fn striped(&self, state: *mut Cells) -> Option<&Cells> {
        if is_striped(state) {
            // SAFETY: an even, non-null `state` came from `Box::into_raw` in
            // `cells_or_install`, was published with a release compare-and-swap that the
            // caller's acquire load pairs with, and is freed only by `drop`, which has
            // `&mut self`.
            unsafe { state.as_ref() }
        } else {
            None
        }
    }

    /// Adds 1. By the thread that owns the base (or its home cell), one `fetch_add`.
    #[inline]
    pub(crate) fn increment(&self) {
        self.add_count(1);
    }

    /// Adds `n` to the count lane, as [`increment`](Adder::increment) adds 1.
    #[inline]
    pub(crate) fn add_count(&self, n: u64) {
        let state = self.state.load(Ordering::Acquire);
        let me = token();
        if state == owned_by(me) {
            self.count.fetch_add(n, Ordering::Relaxed);
            return;
        }
        if let Some(cells) = self.striped(state) {
            let cell = &cells[home()];
            if cell.claim.load(Ordering::Relaxed) == me {
                cell.count.fetch_add(n, Ordering::Relaxed);
                return;
            }
        }
        self.add_count_slow(state, me, n);
    }

    /// An add to the count lane by a thread that owns neither the base nor its home cell
    /// (see the module docs).
    #[cold]
    #[inline(never)]
    fn add_count_slow(&self, mut state: *mut Cells, me: u64, n: u64) {
        if me == 0 {
            // A thread whose thread-locals are gone owns nothing: it adds where it can.
            let base = match self.striped(state) {
                Some(cells) => &cells[0].count,
                None => &self.count,
            };
            base.fetch_add(n, Ordering::Relaxed);
            return;
        }
        loop {
            if let Some(cells) = self.striped(state) {
                return add_to_cell(cells, me, n);
            }
            // Free, or another thread's: make it this thread's.
            match self.state.compare_exchange(
                state,
                owned_by(me),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) if is_striped(now) => state = now,
                // Another thread took it at the same moment.
                Err(_) => return add_to_cell(self.cells_or_install(), me, n),
            }
        }
        if state.is_null() {
            // No thread had added (but a thread without thread-locals, which adds without
            // owning): none can be adding to the base with `fetch_add`.
            self.count.fetch_add(n, Ordering::Relaxed);
            return;
        }
        // Taken from another thread, which may be adding right now: a compare-and-swap
        // notices that.
        let cur = self.count.load(Ordering::Relaxed);
        if let Err(actual) = self.count.compare_exchange(
            cur,
            cur.wrapping_add(n),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            if !add_after_failed_base(&self.count, actual, |bits| bits.wrapping_add(n)) {
                add_to_cell(self.cells_or_install(), me, n);
            }
        }
    }

    /// Adds `v`. Uncontended, one compare-and-swap.
    #[inline]
    pub(crate) fn add(&self, v: f64) {
        let state = self.state.load(Ordering::Acquire);
        if !is_striped(state) {
            let cur = self.sum.load(Ordering::Relaxed);
            // Strong: a weak one could fail spuriously and stripe an uncontended adder.
            match self
                .sum
                .compare_exchange(cur, plus(cur, v), Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => {
                    if add_after_failed_base(&self.sum, actual, |bits| plus(bits, v)) {
                        return;
                    }
                }
            }
        }
        self.add_striped(v);
    }

    /// Adds `v` to the `f64` sum of the calling thread's home cell with a compare-and-swap,
    /// allocating the cells if needed. A thread whose compare-and-swap fails there shares the cell with
    /// another thread: it moves on to the next cell and makes that its home. (The model checks
    /// call it directly, as after a collision on the base.)
    #[inline(never)]
    pub(crate) fn add_striped(&self, v: f64) {
        let cells = self.cells_or_install();
        let home = home();
        let mut i = home;
        loop {
            let c = &cells[i].sum;
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
        self.striped(self.state.load(Ordering::Acquire))
    }

    /// The cells, allocated by the first thread to get here; a thread that loses the race
    /// frees its own (it never wrote to them) and uses the winner's.
    fn cells_or_install(&self) -> &Cells {
        let mut state = self.state.load(Ordering::Acquire);
        if let Some(cells) = self.striped(state) {
            return cells;
        }
        let fresh = Box::into_raw(Box::new(std::array::from_fn(|_| Cell {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            claim: AtomicU64::new(0),
        })));
        loop {
            match self
                .state
                .compare_exchange(state, fresh, Ordering::AcqRel, Ordering::Acquire)
            {
                // SAFETY: just published; freed only by `drop`.
                Ok(_) => return unsafe { &*fresh },
                Err(now) => match self.striped(now) {
                    Some(winner) => {
                        // SAFETY: `fresh` came from `Box::into_raw` above and was never
                        // shared.
                        drop(unsafe { Box::from_raw(fresh) });
                        return winner;
                    }
                    // The base changed owners: the cells replace whichever owns it now.
                    None => state = now,
                },
            }
        }
    }

    /// The sum since the last take (a peek: adds racing it may or may not be in it).
    pub(crate) fn sum(&self) -> f64 {
        self.total(|a| a.load(Ordering::Relaxed))
    }

    /// Takes the sum since the previous take, resetting it (see the module docs for why no
    /// concurrent add is lost or taken twice).
    pub(crate) fn take(&self) -> f64 {
        self.total(|a| a.swap(0, Ordering::Relaxed))
    }

    /// Both lanes' atomics read with `read`, added up.
    fn total(&self, read: impl Fn(&AtomicU64) -> u64) -> f64 {
        let (mut count, mut sum) = (read(&self.count), f64::from_bits(read(&self.sum)));
        for c in self.cells().into_iter().flatten() {
            count = count.wrapping_add(read(&c.count));
            sum += f64::from_bits(read(&c.sum));
        }
        count as f64 + sum
    }

    /// Whether the cells were allocated (threads collided on this adder).
    #[cfg(test)]
    pub(crate) fn is_striped(&self) -> bool {
        self.cells().is_some()
    }
}

/// The compare-and-swap on a base (`count` or `sum`) failed, finding `actual`. A 0 there is
/// a poll's reset (adds only ever raise a sum): retry on the base, adding with `plus`, rather
/// than allocate cells for an adder with one writer. Returns whether the add is done.
#[cold]
#[inline(never)]
fn add_after_failed_base(base: &AtomicU64, mut actual: u64, plus: impl Fn(u64) -> u64) -> bool {
    while actual == 0 {
        match base.compare_exchange(0, plus(0), Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(a) => actual = a,
        }
    }
    false
}

/// An add of `n` to the calling thread's home cell's count, by a thread that does not hold
/// its claim: it takes the claim, and if another thread held it, adds with a
/// compare-and-swap, which fails if that thread is adding there at the same moment; then it
/// adds with `fetch_add` and moves its home to the next cell (see the module docs).
#[cold]
#[inline(never)]
fn add_to_cell(cells: &Cells, me: u64, n: u64) {
    let i = home();
    let cell = &cells[i];
    let holder = cell.claim.swap(me, Ordering::Relaxed);
    if holder != 0 && holder != me {
        let cur = cell.count.load(Ordering::Relaxed);
        if cell
            .count
            .compare_exchange(
                cur,
                cur.wrapping_add(n),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            return;
        }
        set_home((i + 1) % STRIPES);
    }
    cell.count.fetch_add(n, Ordering::Relaxed);
}

impl Default for Adder {
    fn default() -> Adder {
        Adder::new()
    }
}

impl Drop for Adder {
    fn drop(&mut self) {
        let p = self.state.load(Ordering::Acquire);
        if is_striped(p) {
            // SAFETY: an even, non-null `state` is from `Box::into_raw` in
            // `cells_or_install`; `&mut self` means no other reference to the cells remains,
            // and the pointer is never freed elsewhere.
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
            a.increment();
            a.add(1.0);
        }
        a.add(0.5);
        assert_eq!(a.count.load(Ordering::Relaxed), 1000);
        assert_eq!(a.sum(), 2000.5);
        assert_eq!(a.take(), 2000.5);
        assert_eq!(a.take(), 0.0);
        a.add(2.0);
        assert_eq!(a.sum(), 2.0);
        assert!(!a.is_striped());
    }

    #[test]
    fn striped_adds_sum_with_the_base_and_reset() {
        let a = Adder::new();
        a.add(1.0);
        a.increment();
        a.add_striped(2.0); // as after a collision: allocates the cells
        assert!(a.is_striped());
        a.add(4.0); // goes to a cell now
        a.increment();
        add_to_cell(a.cells().unwrap(), token(), 3);
        assert_eq!(a.sum.load(Ordering::Relaxed), 1f64.to_bits());
        assert_eq!(a.count.load(Ordering::Relaxed), 1);
        assert_eq!(a.sum(), 12.0);
        assert_eq!(a.take(), 12.0);
        assert_eq!(a.sum(), 0.0);
        a.add(8.0);
        a.increment();
        assert_eq!(a.take(), 9.0);
    }

    #[test]
    fn the_incrementing_thread_owns_the_base_and_threads_taking_turns_hand_it_over() {
        let a = Adder::new();
        a.increment();
        assert_eq!(a.state.load(Ordering::Relaxed), owned_by(token()));
        // Threads one after the other: never at the same time, so never striped.
        for _ in 0..3 {
            std::thread::scope(|s| {
                s.spawn(|| {
                    a.increment();
                    a.increment();
                    assert_eq!(a.state.load(Ordering::Relaxed), owned_by(token()));
                });
            });
        }
        a.increment();
        assert_eq!(a.state.load(Ordering::Relaxed), owned_by(token()));
        assert!(!a.is_striped());
        assert_eq!(a.take(), 8.0);
    }

    #[test]
    fn a_home_cell_is_claimed_and_an_idle_claim_taken_over() {
        let a = Adder::new();
        a.add_striped(0.5); // as after a collision: allocates the cells
        let cells = a.cells().unwrap();
        let i = home();
        a.increment(); // claims the home cell
        assert_eq!(cells[i].claim.load(Ordering::Relaxed), token());
        a.increment(); // through the claim
        assert_eq!(cells[i].count.load(Ordering::Relaxed), 2);
        // Another thread with the same home: this one is not adding, so it takes the claim
        // over and stays.
        std::thread::scope(|s| {
            s.spawn(|| {
                set_home(i);
                a.increment();
                assert_eq!(home(), i);
                assert_eq!(cells[i].claim.load(Ordering::Relaxed), token());
                a.increment();
            });
        });
        assert_eq!(cells[i].count.load(Ordering::Relaxed), 4);
        a.increment(); // and back
        assert_eq!(cells[i].claim.load(Ordering::Relaxed), token());
        assert_eq!(a.take(), 5.5);
    }

    #[test]
    fn threads_adding_at_once_from_one_home_spread_over_the_cells() {
        use std::sync::atomic::AtomicBool;
        use std::time::{Duration, Instant};
        let a = Adder::new();
        a.add_striped(0.5);
        let (moved, start) = (AtomicBool::new(false), std::sync::Barrier::new(2));
        let deadline = Instant::now() + Duration::from_secs(20);
        let added: u64 = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        set_home(0);
                        start.wait();
                        let mut n = 0;
                        while !moved.load(Ordering::Relaxed) && Instant::now() < deadline {
                            for _ in 0..1000 {
                                a.increment();
                            }
                            n += 1000;
                            if home() != 0 {
                                moved.store(true, Ordering::Relaxed);
                            }
                        }
                        n
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert!(
            moved.load(Ordering::Relaxed),
            "two threads kept adding to one cell"
        );
        assert_eq!(a.sum(), added as f64 + 0.5);
    }

    #[test]
    fn racing_threads_lose_nothing_and_take_nothing_twice() {
        let a = Arc::new(Adder::new());
        const PER_THREAD: u64 = 200_000;
        // Each writer uses both lanes, so that both collide.
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let a = a.clone();
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        if i % 2 == 0 {
                            a.increment();
                        } else {
                            a.add(1.0);
                        }
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
