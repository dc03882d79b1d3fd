//! Exhaustive model checks (loom) of the lock-free protocols, over every interleaving and the
//! weak-memory behaviours loom simulates:
//!
//! - a counter's striped sum (`meter::adder::Adder`, the real type: its atomics, its
//!   per-thread home index and token come from loom in these builds): adds and increments
//!   racing each other and a poll while the sum switches from one atomic to cells, a thread
//!   taking the base over from one adding with `fetch_add`, two threads allocating the cells
//!   at once, and two threads colliding on one cell; no add may be lost or taken twice;
//! - the cell claim that keeps a timer's or summary's record whole between polls
//!   (`meter::stats`: a record claims a cell with a compare-and-swap, writes its fields with
//!   plain loads and stores and releases the cell with a store; a poll claims each cell to
//!   read and reset it). Modelled with the same orderings, on two cells, since `Stats` keeps
//!   its home cell in a thread-local and is not built on loom atomics;
//! - the registry's retire/find handshake (`sync::retire`, the real functions): a lookup that
//!   takes a handle races a poll that removes the idle meter; no update made through a handle
//!   may be lost. The registry itself cannot run under loom (arc-swap and hashbrown are not
//!   loom-aware), so the model keeps what the handshake relies on: the `Arc` owner count
//!   (raised with a relaxed increment by a clone, lowered with a release decrement by a drop,
//!   read with a relaxed load, as std does), the `retired` mark, the write lock that
//!   serialises the removal with the insert path, and a counter updated through the handle.
//!
//! Run with (a release build of the whole dependency tree with that cfg; a separate
//! `CARGO_TARGET_DIR` keeps the normal build cache):
//!
//! ```text
//! RUSTFLAGS="--cfg spectator_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p spectator --release --lib loom
//! ```
//!
//! The cfg is `spectator_loom`, not the usual `loom`: under `--cfg loom` tokio builds its own
//! loom mode, without `tokio::net`, which reqwest needs. Not part of the default suite (the
//! build alone takes minutes on two cores); there, the stress tests of `tests/concurrency.rs`
//! and `meter::stats`' own tests cover the same paths by brute force.

use crate::meter::adder::{set_home, Adder};
use crate::sync::retire::{handle_is_live, try_retire_all};
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// One cell of a timer: claimed flag, count and total (each record adds 1 and 2).
struct Cell {
    claimed: AtomicBool,
    count: AtomicU64,
    total: AtomicU64,
}

impl Cell {
    fn new() -> Cell {
        Cell {
            claimed: AtomicBool::new(false),
            count: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn try_claim(&self) -> bool {
        self.claimed
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn release(&self) {
        self.claimed.store(false, Ordering::Release);
    }
}

/// A record: the home cell, else the next free one, else wait and try again.
fn record(cells: &[Cell; 2], home: usize) {
    loop {
        for k in 0..2 {
            let c = &cells[(home + k) % 2];
            if c.try_claim() {
                // Plain load + store: only the claimer writes.
                c.count
                    .store(c.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                c.total
                    .store(c.total.load(Ordering::Relaxed) + 2, Ordering::Relaxed);
                c.release();
                return;
            }
        }
        thread::yield_now();
    }
}

/// A poll: claim each cell in turn, take and reset it, release it.
fn poll(cells: &[Cell; 2]) -> u64 {
    let mut taken = 0;
    for c in cells {
        while !c.try_claim() {
            thread::yield_now();
        }
        let count = c.count.load(Ordering::Relaxed);
        let total = c.total.load(Ordering::Relaxed);
        // Never half a record: its count and its total together.
        assert_eq!(total, 2 * count);
        c.count.store(0, Ordering::Relaxed);
        c.total.store(0, Ordering::Relaxed);
        c.release();
        taken += count;
    }
    taken
}

#[test]
fn loom_cell_claims_keep_records_whole_and_exact() {
    loom::model(|| {
        let cells = Arc::new([Cell::new(), Cell::new()]);
        // Two writers sharing a home cell (so one may move to the other) against a poll.
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let cells = cells.clone();
                thread::spawn(move || record(&cells, 0))
            })
            .collect();
        let mut total = poll(&cells);
        for w in writers {
            w.join().unwrap();
        }
        total += poll(&cells);
        assert_eq!(total, 2, "every record in exactly one poll");
    });
}

/// Three threads, each a few atomic operations (a poll swaps the base and four cells), have
/// too many interleavings to try them all in minutes: explore those with at most
/// `SPECTATOR_LOOM_PREEMPTIONS` (default 3) preemptions, which is where races like a lost
/// update between a load and a store show up.
fn bounded() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(
        std::env::var("SPECTATOR_LOOM_PREEMPTIONS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3),
    );
    b
}

/// Two writers add to one adder while a poll takes it (in threads of their own, so that
/// loom's search sees the poll's accesses conflict with the writers'); whatever the
/// interleaving, the poll and a last take after all three finish see `expected` in all.
/// `home` sets each writer's home cell first (`None`: the round-robin one); `writes` are the
/// writers' adds; `striped` allocates the cells first (with an add of 1 that `expected`
/// counts).
fn adds_racing_a_poll(home: Option<usize>, writes: [fn(&Adder); 2], expected: f64, striped: bool) {
    let adder = Arc::new(Adder::new());
    if striped {
        adder.add_striped(1.0);
    }
    let writers: Vec<_> = writes
        .into_iter()
        .map(|write| {
            let adder = adder.clone();
            thread::spawn(move || {
                if let Some(i) = home {
                    set_home(i);
                }
                write(&adder)
            })
        })
        .collect();
    let poll = {
        let adder = adder.clone();
        thread::spawn(move || adder.take())
    };
    for w in writers {
        w.join().unwrap();
    }
    let total = poll.join().unwrap() + adder.take();
    assert_eq!(total, expected, "an add was lost or taken twice");
}

/// The adds as a counter makes them: when the writers' compare-and-swaps on the base collide,
/// one of them switches the adder to cells, racing the poll's reset.
#[test]
fn loom_adder_adds_racing_a_poll_are_taken_exactly_once() {
    bounded().check(|| adds_racing_a_poll(None, [|a| a.add(1.0), |a| a.add(2.0)], 3.0, false));
}

/// The same for increments, which have their own (integer) lane: the first writer takes the
/// free base, the second takes it over from the first (or collides with it and stripes it).
#[test]
fn loom_adder_increments_racing_a_poll_are_taken_exactly_once() {
    bounded().check(|| adds_racing_a_poll(None, [Adder::increment, Adder::increment], 2.0, false));
}

/// Two increments per writer: after taking the base (or claiming a cell) a writer adds with
/// `fetch_add`, while the other may be taking the base over or striping it.
#[test]
fn loom_adder_owned_increments_racing_a_takeover_and_a_poll_are_taken_exactly_once() {
    let twice: fn(&Adder) = |a| {
        a.increment();
        a.increment();
    };
    bounded().check(move || adds_racing_a_poll(None, [twice, twice], 4.0, false));
}

/// An increment and an add: a take sums both lanes.
#[test]
fn loom_adder_both_lanes_racing_a_poll_are_taken_exactly_once() {
    bounded().check(|| adds_racing_a_poll(None, [Adder::increment, |a| a.add(2.0)], 3.0, false));
}

/// Two writers that collided on the base: both allocate the cells at once (the loser frees its
/// own and uses the winner's), and both start from the same home cell, so one of them may find
/// it taken and move to the next.
#[test]
fn loom_adder_cells_allocated_by_two_threads_at_once_lose_nothing() {
    bounded().check(|| {
        adds_racing_a_poll(
            Some(0),
            [|a| a.add_striped(1.0), |a| a.add_striped(2.0)],
            3.0,
            false,
        )
    });
}

/// Striped, two writers incrementing from one home cell: each takes the cell's claim, or
/// takes it over from the other (adding with a compare-and-swap), or collides and moves on,
/// while the poll takes the cells.
#[test]
fn loom_adder_claims_of_one_home_cell_lose_nothing() {
    let twice: fn(&Adder) = |a| {
        a.increment();
        a.increment();
    };
    bounded().check(move || adds_racing_a_poll(Some(0), [twice, twice], 5.0, true));
}

/// One registered meter, as the handshake sees it.
struct Entry {
    /// `Arc::strong_count` of the meter's core: 1 = only the registry holds it.
    owners: AtomicUsize,
    retired: AtomicBool,
    /// The meter's value (a counter).
    count: AtomicU64,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            owners: AtomicUsize::new(1),
            retired: AtomicBool::new(false),
            count: AtomicU64::new(0),
        }
    }
}

/// The registry: the write lock guards which entry is current (`None`: removed).
struct Registry {
    first: Arc<Entry>,
    write: Mutex<Option<Arc<Entry>>>,
}

impl Registry {
    /// `registry.counter(..).increment()` followed by dropping the handle.
    fn increment(&self) {
        // The lock-free path: the snapshot still lists `first` (a removal publishes a new
        // snapshot only after deciding, so a stale snapshot is what the handshake is for).
        let e = &self.first;
        e.owners.fetch_add(1, Ordering::Relaxed); // clone
        if handle_is_live(&e.retired) {
            e.count.fetch_add(1, Ordering::Relaxed);
            e.owners.fetch_sub(1, Ordering::Release); // drop
            return;
        }
        e.owners.fetch_sub(1, Ordering::Release);
        // The insert path, under the write lock: the current entry, or a new one.
        let mut current = self.write.lock().unwrap();
        let e = current
            .get_or_insert_with(|| Arc::new(Entry::new()))
            .clone();
        e.owners.fetch_add(1, Ordering::Relaxed);
        drop(current);
        e.count.fetch_add(1, Ordering::Relaxed);
        e.owners.fetch_sub(1, Ordering::Release);
    }

    /// A poll: measure (no lock), then, under the write lock, remove the meter if it is
    /// still unowned (the TTL is 0: idle at once), measuring it once more as it goes.
    fn poll(&self) -> u64 {
        // Loading the snapshot (an acquire load in arc-swap; a short lock here).
        let Some(e) = self.write.lock().unwrap().clone() else {
            return 0;
        };
        let mut taken = e.count.swap(0, Ordering::Relaxed);
        let mut current = self.write.lock().unwrap();
        let still_current = current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &e));
        let retired = |e: &Entry| -> bool {
            !try_retire_all(
                &[e],
                |e| &e.retired,
                |e| e.owners.load(Ordering::Relaxed) == 1,
            )
            .is_empty()
        };
        if still_current && retired(&e) {
            // Nothing can write to it after this.
            taken += e.count.swap(0, Ordering::Relaxed);
            *current = None;
        }
        taken
    }
}

#[test]
fn loom_retire_never_loses_an_update_made_through_a_handle() {
    loom::model(|| {
        let first = Arc::new(Entry::new());
        let registry = Arc::new(Registry {
            first: first.clone(),
            write: Mutex::new(Some(first)),
        });
        let writer = {
            let r = registry.clone();
            thread::spawn(move || r.increment())
        };
        let mut measured = registry.poll();
        writer.join().unwrap();
        // Later polls take whatever is left in the current entry, if any.
        measured += registry.poll();
        let current = registry.write.lock().unwrap().clone();
        if let Some(e) = current {
            measured += e.count.load(Ordering::Relaxed);
        }
        assert_eq!(measured, 1, "the update was lost or counted twice");
    });
}
