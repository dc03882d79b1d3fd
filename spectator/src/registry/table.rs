//! The registry's map from ids to meters: an open-addressed table of entry pointers that
//! readers probe without locks while inserts (serialised by the registry's write lock) fill
//! empty slots in place.
//!
//! Each insert stores one pointer; a table more than half full is replaced by one twice the
//! size (each entry moved once per doubling: O(1) amortised per meter, where a new immutable
//! map per insert costs O(log n) copies). A reader that still holds the replaced table sees
//! no later inserts and finds them through the insert path, which checks the current table
//! under the write lock. Removal (at a poll) builds a new table of the survivors.

use super::Entry;
use crate::id::{Id, PassThroughBuilder};
use hashbrown::Equivalent;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use triomphe::Arc;

pub(super) struct Table {
    /// Null: empty. A non-null slot owns one reference to its entry (`Arc::into_raw`; an `Arc`
    /// without a weak count, which entries never need), and
    /// is never changed again (tables only grow by being replaced).
    slots: Box<[AtomicPtr<Entry>]>,
    /// Entries stored; written under the write lock only.
    len: AtomicUsize,
}

/// Slots of the smallest table.
const MIN_SLOTS: usize = 16;

impl Default for Table {
    fn default() -> Table {
        Table::with_room(0)
    }
}

impl Table {
    /// An empty table with room for `n` entries at most half full.
    fn with_room(n: usize) -> Table {
        let slots = (2 * n).max(MIN_SLOTS).next_power_of_two();
        Table {
            slots: (0..slots).map(|_| AtomicPtr::default()).collect(),
            len: AtomicUsize::new(0),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    fn start(&self, hash: u64) -> usize {
        // Ids hash to well-mixed 64-bit values: the low bits choose the slot.
        hash as usize & (self.slots.len() - 1)
    }

    /// The entry whose id is `key`.
    #[inline]
    pub(super) fn get<Q: Hash + Equivalent<Id> + ?Sized>(&self, key: &Q) -> Option<&Entry> {
        let mask = self.slots.len() - 1;
        let mut i = self.start(PassThroughBuilder.hash_one(key));
        loop {
            let p = self.slots[i].load(Ordering::Acquire);
            if p.is_null() {
                return None;
            }
            // SAFETY: a non-null slot holds a reference to a live entry for as long as the
            // table lives (released only in `drop`); the acquire load pairs with the release
            // store in `put`, so the entry is fully built.
            let entry = unsafe { &*p };
            if key.equivalent(&entry.id) {
                return Some(entry);
            }
            i = (i + 1) & mask;
        }
    }

    /// Every entry (those stored while this runs may or may not be seen).
    pub(super) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().filter_map(|s| {
            // SAFETY: as in `get`.
            unsafe { s.load(Ordering::Acquire).as_ref() }
        })
    }

    /// Whether one more entry fits in place (keeping the table at most half full).
    pub(super) fn has_room(&self) -> bool {
        2 * (self.len() + 1) <= self.slots.len()
    }

    /// Stores `entry` (its id must not be in the table). Callers hold the registry's write
    /// lock and checked `has_room`.
    pub(super) fn put(&self, entry: Arc<Entry>) {
        let mask = self.slots.len() - 1;
        let mut i = self.start(entry.id.hash_value());
        while !self.slots[i].load(Ordering::Relaxed).is_null() {
            i = (i + 1) & mask;
        }
        self.slots[i].store(Arc::into_raw(entry).cast_mut(), Ordering::Release);
        self.len.fetch_add(1, Ordering::Relaxed);
    }

    /// A new table of the entries `keep` accepts, with room for `extra` more.
    pub(super) fn rebuilt(&self, extra: usize, keep: impl Fn(&Entry) -> bool) -> Table {
        let table = Table::with_room(self.len() + extra);
        for s in self.slots.iter() {
            let p = s.load(Ordering::Acquire);
            // SAFETY: as in `get`.
            if let Some(entry) = unsafe { p.as_ref() } {
                if keep(entry) {
                    // SAFETY: `p` came from `Arc::into_raw` and this table still owns its
                    // reference; the new table takes one of its own.
                    let held = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(p) });
                    table.put(Arc::clone(&held));
                }
            }
        }
        table
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for s in self.slots.iter_mut() {
            let p = *s.get_mut();
            if !p.is_null() {
                // SAFETY: the slot's own reference, from `Arc::into_raw` in `put`.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
    }
}
