//! Exhaustive model checks (loom) of the two lock-free protocols, over every interleaving and
//! the weak-memory behaviours loom simulates:
//!
//! - the [`Phaser`] that hands a poll whole intervals of a multi-field meter while writers
//!   never wait (the real type, built on the `sync` shim);
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
//! and the Phaser unit test cover the same paths by brute force.

use crate::meter::atomic::Phaser;
use crate::sync::retire::{handle_is_live, try_retire};
use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

#[test]
fn loom_phaser_polls_take_whole_records() {
    loom::model(|| {
        let phaser = Arc::new(Phaser::new());
        // Per phase: a record's count and its amount (2 per record).
        let slots = Arc::new([
            [AtomicU64::new(0), AtomicU64::new(0)],
            [AtomicU64::new(0), AtomicU64::new(0)],
        ]);
        let writers: Vec<_> = (0..2)
            .map(|_| {
                let (p, s) = (phaser.clone(), slots.clone());
                thread::spawn(move || {
                    p.write(|ph| {
                        s[ph][0].fetch_add(1, Ordering::Relaxed);
                        s[ph][1].fetch_add(2, Ordering::Relaxed);
                    })
                })
            })
            .collect();
        let take = |slots: &[[AtomicU64; 2]; 2], phase: usize| {
            let count = slots[phase][0].swap(0, Ordering::Relaxed);
            let amount = slots[phase][1].swap(0, Ordering::Relaxed);
            // Never half a record: the count and the amount of each record together.
            assert_eq!(amount, 2 * count);
            count
        };
        let mut total = take(&slots, phaser.flip());
        for w in writers {
            w.join().unwrap();
        }
        // Two more polls drain both phases.
        total += take(&slots, phaser.flip());
        total += take(&slots, phaser.flip());
        assert_eq!(total, 2, "every record in exactly one poll");
    });
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
        if still_current && try_retire(&e.retired, || e.owners.load(Ordering::Relaxed) == 1) {
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
