//! The registry's map from ids to meters: an open-addressed table of entry pointers that
//! readers probe without locks while inserts (serialised by the registry's write lock) fill
//! empty slots in place.
//!
//! Each insert stores one pointer; a table more than half full is replaced by one twice the
//! size (each entry moved once per doubling: O(1) amortised per meter, where a new immutable
//! map per insert costs O(log n) copies). A reader that still holds the replaced table sees
//! no later inserts and finds them through the insert path, which checks the current table
//! under the write lock. Removal (at a poll) builds a new table of the survivors.
//!
//! Growing moves the entries' references instead of copying them when nothing else holds
//! the old table (see [`Table::grown`]): a registration burst on one thread then touches each
//! entry once per doubling, not three times (read, count up, and later count down).

use super::Entry;
use crate::id::TableKey;
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

    /// [`len`](Table::len), and every entry it counts is visible to a later `get` on this
    /// thread.
    pub(super) fn len_acquire(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn start(&self, short_hash: u32) -> usize {
        // Ids hash to well-mixed values: the low bits choose the slot (read from the id
        // itself, so that placing an entry does not read its id's allocation).
        short_hash as usize & (self.slots.len() - 1)
    }

    /// The entry whose id is `key`.
    #[inline]
    pub(super) fn get<Q: TableKey + ?Sized>(&self, key: &Q) -> Option<&Entry> {
        let mask = self.slots.len() - 1;
        let mut i = self.start(key.short_hash());
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
        // Release (in `place`): a lookup that reads the count sees the entry (see
        // `len_acquire`).
        self.place(Arc::into_raw(entry).cast_mut());
    }

    /// Replaces `current` (the write lock's copy) by a table twice the size with the same
    /// entries. `publish` makes the new table current for readers (after it, nothing new
    /// can take a reference to the old one); `release_own` lets go of this thread's own
    /// reference to the old one. Then, if nothing else holds the old table, the new one takes
    /// its entries' references over; otherwise each entry is counted once more. Callers hold
    /// the write lock (so no entry is removed meanwhile).
    pub(super) fn grow(
        current: &mut std::sync::Arc<Table>,
        publish: impl FnOnce(&std::sync::Arc<Table>),
        release_own: impl FnOnce(),
    ) {
        let table = Table::with_room(current.len() + 1);
        for p in current.pointers() {
            // Not counted yet: until the match below, the old table's references keep these
            // entries alive (`old` is held here), and no entry can be removed.
            table.place(p);
        }
        let mut old = std::mem::replace(current, std::sync::Arc::new(table));
        publish(current);
        release_own();
        match std::sync::Arc::get_mut(&mut old) {
            // Nothing else can read the old table: its references are the new table's now.
            Some(unshared) => {
                for s in unshared.slots.iter_mut() {
                    *s.get_mut() = std::ptr::null_mut();
                }
            }
            // Readers still hold the old table: the new one takes references of its own.
            None => {
                for p in current.pointers() {
                    // SAFETY: the old table's reference keeps `p` alive.
                    unsafe { add_ref(p) };
                }
            }
        }
    }

    /// Stores an entry pointer that carries its own reference (see `put`).
    fn place(&self, p: *mut Entry) {
        let mask = self.slots.len() - 1;
        // SAFETY: `p` is a live entry: its reference moves into this table.
        let mut i = self.start(unsafe { &*p }.id.short_hash());
        while !self.slots[i].load(Ordering::Relaxed).is_null() {
            i = (i + 1) & mask;
        }
        self.slots[i].store(p, Ordering::Release);
        self.len.fetch_add(1, Ordering::Release);
    }

    /// A new table of the entries `keep` accepts (each counted once more, for it).
    pub(super) fn rebuilt(&self, keep: impl Fn(&Entry) -> bool) -> Table {
        let table = Table::with_room(self.len());
        // SAFETY (both blocks): this table's reference keeps `p` alive.
        for p in self.pointers().filter(|&p| keep(unsafe { &*p })) {
            unsafe { add_ref(p) };
            table.place(p);
        }
        table
    }

    /// The entries' pointers, each carrying this table's reference (the acquire loads pair
    /// with the release store in `place`).
    fn pointers(&self) -> impl Iterator<Item = *mut Entry> + '_ {
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|p| !p.is_null())
    }
}

/// Counts one more reference to the entry at `p` (for another table's slot).
///
/// # Safety
/// `p` came from `Arc::into_raw` and a reference held elsewhere keeps it alive.
unsafe fn add_ref(p: *mut Entry) {
    // SAFETY: the caller's contract; the `ManuallyDrop` leaves the borrowed reference as it is.
    let held = std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(p) });
    std::mem::forget(Arc::clone(&held));
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
