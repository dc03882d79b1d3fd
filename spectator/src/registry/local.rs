//! What each thread keeps to look meters up without touching shared lines: its references to
//! the tables of the registries it used, and a memo of its recent lookups.
//!
//! **Tables.** A lookup reads the current table with one load of the registry's `version`
//! instead of `ArcSwap::load` (two atomic read-modify-writes on a shared line per lookup).
//! Inserts go into the same table in place, so a thread's reference stays current until the
//! table is replaced (grown, or rebuilt without expired meters). A thread keeps a replaced
//! table until its next lookup in that registry (or its exit): the table, and the meters only
//! it lists, stay in memory that long. That is safe: the retire handshake keys on each
//! meter's own owner count and `retired` mark, which a reference to a table does not change.
//!
//! **Memo.** A call site usually passes the same name and tag strings each time (literals, or
//! values from a small set). The memo maps the addresses of those strings to the entry a full
//! lookup found, and a hit checks the strings' contents against that entry's id: the addresses
//! only choose the slot, so a reused address with other contents is a miss, never a wrong
//! meter. A hit costs the string comparisons, without sorting or hashing them or probing the
//! table.
//!
//! **Literal call sites.** When the name, the tags slice and every tag string lie in memory
//! that cannot change while this code is loaded (string literals and constants: see `fixed`),
//! the memo also keeps the slices' addresses and lengths, and a hit with those exact slices
//! skips the comparison: there, the same address and length is the same text.
//!
//! A memo entry points into the table it was found in and is used only while the thread still
//! holds that table (each reference the thread takes gets a number, never reused on the
//! thread).

use super::fixed::{is_fixed, is_fixed_str};
use super::{typed_handle, Entry, Registry, RegistryInner, Table};
use crate::id::IdRef;
use crate::meter::MeterKind;
use crate::sync::retire::handle_is_live;
use std::any::TypeId;
use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct Held {
    registry: u64,
    version: u64,
    /// This reference's number on its thread (0: none).
    number: u64,
    table: Arc<Table>,
}

/// A lookup that a full lookup answered, for the call sites whose strings map to this slot.
#[repr(align(64))]
struct Memo {
    /// The number of the held table `entry` is in (0: empty slot).
    held: u64,
    entry: *const Entry,
    /// The type of the entry's core, read when the memo was filled: a hit checks the type
    /// it is asked for against this copy instead of asking the core (a virtual call), and
    /// entries need not store it.
    core_type: TypeId,
    /// The caller's tag indexes in the id's (key) order.
    order: [u8; MEMO_TAGS],
    /// The caller's slices, when all their bytes are fixed.
    site: FixedSite,
}

/// The name and tags slices of a call site whose strings are all fixed (see `fixed`): the
/// same slices (address and length) are the same strings. Null `name`: none. Lengths are
/// kept in 32 bits (a memo is then one cache line); a slice longer than that is never kept,
/// and its length reads as `u32::MAX`, so it never matches a kept one.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FixedSite {
    name: *const u8,
    tags: *const (),
    name_len: u32,
    tags_len: u32,
}

/// `len` in 32 bits, `u32::MAX` for any length that does not fit.
#[inline]
fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl FixedSite {
    const NONE: FixedSite = FixedSite {
        name: std::ptr::null(),
        tags: std::ptr::null(),
        name_len: 0,
        tags_len: 0,
    };

    /// The slices as a `FixedSite`, not yet checked for being fixed (a `&str` is never null,
    /// so this never equals `NONE`).
    #[inline]
    fn of(name: &str, tags: &[(&str, &str)]) -> FixedSite {
        FixedSite {
            name: name.as_ptr(),
            tags: tags.as_ptr().cast(),
            name_len: len32(name.len()),
            tags_len: len32(tags.len()),
        }
    }

    /// The slices' `FixedSite` if all their bytes are fixed, else `NONE`.
    fn checked(name: &str, tags: &[(&str, &str)]) -> FixedSite {
        let all_fixed = is_fixed_str(name)
            && is_fixed(tags.as_ptr().cast(), std::mem::size_of_val(tags))
            && tags.iter().all(|(k, v)| is_fixed_str(k) && is_fixed_str(v));
        let site = FixedSite::of(name, tags);
        if all_fixed && site.name_len != u32::MAX && site.tags_len != u32::MAX {
            site
        } else {
            FixedSite::NONE
        }
    }
}

/// Tables held per thread, indexed by registry number: a process usually has one registry.
const HELD: usize = 4;
/// Memo slots per thread.
const MEMOS: usize = 64;
/// Lookups with more tags are not memoised.
const MEMO_TAGS: usize = 8;

// A memo is one cache line.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Memo>() == 64);

struct Local {
    held: [Option<Held>; HELD],
    memos: [Memo; MEMOS],
    last_number: u64,
}

impl Local {
    fn new() -> Box<Local> {
        Box::new(Local {
            held: [const { None }; HELD],
            memos: [const {
                Memo {
                    held: 0,
                    entry: std::ptr::null(),
                    core_type: TypeId::of::<()>(),
                    order: [0; MEMO_TAGS],
                    site: FixedSite::NONE,
                }
            }; MEMOS],
            last_number: 0,
        })
    }

    /// The held table of `inner` at `version` (taken now if this thread's is older), and the
    /// one it replaced, to be dropped once the thread's state is released.
    fn table(&mut self, inner: &RegistryInner, version: u64) -> (&Held, Option<Held>) {
        let slot = (inner.uid % HELD as u64) as usize;
        let fresh = matches!(&self.held[slot],
            Some(h) if h.registry == inner.uid && h.version == version);
        let mut old = None;
        if !fresh {
            self.last_number += 1;
            old = self.held[slot].replace(Held {
                registry: inner.uid,
                version,
                number: self.last_number,
                table: inner.table.load_full(),
            });
        }
        match &self.held[slot] {
            Some(held) => (held, old),
            None => unreachable!("filled above"),
        }
    }
}

thread_local! {
    /// Boxed, so that threads that never look a meter up carry one pointer, not 4 KB.
    static LOCAL: RefCell<Option<Box<Local>>> = const { RefCell::new(None) };
}

/// The memo slot of a call site: a mix of its strings' addresses (not their contents).
#[inline]
fn memo_slot(name: &str, tags: &[(&str, &str)]) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut x = (name.as_ptr() as u64) ^ (tags.as_ptr() as u64).rotate_left(29);
    for (_, v) in tags {
        x = (x ^ v.as_ptr() as u64).wrapping_mul(K);
    }
    (x.wrapping_mul(K) >> (64 - MEMOS.trailing_zeros())) as usize
}

/// What a lookup that found no live meter learnt, for the insert path.
pub(super) struct Missed<'a> {
    /// The borrowed key it made (`None` if it made none), to build the id from.
    pub(super) key: Option<IdRef<'a>>,
    /// When the id was not in the table: the registry's version and the table's length
    /// before the probe. If both are unchanged under the write lock, no meter was inserted
    /// since, and the insert need not probe again.
    pub(super) absent_at: Option<(u64, usize)>,
}

impl<'a> Missed<'a> {
    fn key(key: Option<IdRef<'a>>) -> Missed<'a> {
        Missed {
            key,
            absent_at: None,
        }
    }
}

/// The live meter for `name` and `tags` if this thread's memo has it: the hot path, small
/// enough to inline at every lookup.
#[inline]
pub(super) fn remembered<M: MeterKind>(
    registry: &Registry,
    name: &str,
    tags: &[(&str, &str)],
) -> Option<M> {
    LOCAL
        .try_with(|local| {
            let local = local.try_borrow().ok()?;
            memo_hit(
                registry,
                local.as_deref()?,
                memo_slot(name, tags),
                name,
                tags,
            )
        })
        .ok()
        .flatten()
}

/// The live meter for `name` and `tags` (a handle on it), else what the lookup learnt; fills
/// the memo. For lookups that [`remembered`] did not answer.
pub(super) fn find<'a, M: MeterKind>(
    registry: &Registry,
    name: &'a str,
    tags: &'a [(&'a str, &'a str)],
) -> Result<M, Missed<'a>> {
    let inner = &*registry.inner;
    let version = inner.version.load(Ordering::Acquire);
    let found = LOCAL.try_with(|local| {
        // Busy only when a lookup runs inside another on this thread (a log subscriber that
        // records a metric): that one reads the table directly.
        let mut local = local.try_borrow_mut().ok()?;
        let local = local.get_or_insert_with(Local::new);
        let slot = memo_slot(name, tags);
        let key = IdRef::new(name, tags);
        let (held, old) = local.table(inner, version);
        let number = held.number;
        let Some(key) = key else {
            return Some(Err(Missed::key(None)));
        };
        // Acquire: pairs with the release of `put`'s count, so that the probe sees every
        // entry counted here.
        let len = held.table.len_acquire();
        let Some(entry) = held.table.get(&key) else {
            return Some(Err(Missed {
                key: Some(key),
                absent_at: Some((version, len)),
            }));
        };
        let handle = registry.live_handle(entry);
        let entry: *const Entry = entry;
        if let (Some(order), Some(_)) = (key.order(), &handle) {
            if order.len() <= MEMO_TAGS {
                let memo = &mut local.memos[slot];
                memo.held = number;
                memo.entry = entry;
                // SAFETY: `entry` is in the held table, alive while `local` is borrowed.
                memo.core_type = unsafe { &*entry }.core.core_type();
                memo.order[..order.len()].copy_from_slice(order);
                memo.site = FixedSite::checked(name, tags);
            }
        }
        drop(old);
        Some(handle.ok_or(Missed::key(Some(key))))
    });
    match found {
        Ok(Some(result)) => result,
        _ => {
            let key = IdRef::new(name, tags).ok_or(Missed::key(None))?;
            match inner.table.load().get(&key) {
                Some(entry) => registry.live_handle(entry).ok_or(Missed::key(Some(key))),
                None => Err(Missed::key(Some(key))),
            }
        }
    }
}

#[inline]
fn memo_hit<M: MeterKind>(
    registry: &Registry,
    local: &Local,
    slot: usize,
    name: &str,
    tags: &[(&str, &str)],
) -> Option<M> {
    let inner = &*registry.inner;
    let memo = &local.memos[slot];
    let held = local.held[(inner.uid % HELD as u64) as usize].as_ref()?;
    if memo.held != held.number || held.registry != inner.uid {
        return None;
    }
    // SAFETY: the memo was filled from this held table (same number, and numbers are never
    // reused on a thread), which is alive while `local` is borrowed, and a table keeps its
    // entries alive.
    let entry = unsafe { &*memo.entry };
    if memo.site != FixedSite::of(name, tags) && !same_strings(entry, memo, name, tags) {
        return None;
    }
    if memo.core_type != TypeId::of::<M::Core>() {
        return registry.live_handle(entry); // another kind: the registry's warning path
    }
    // SAFETY: `memo.core_type` is the type of the entry's core (an entry's core never
    // changes), and it is `M::Core`.
    let handle = unsafe { typed_handle::<M>(entry) };
    // As in `Registry::live_handle`: drop the handle if the meter is being removed.
    handle_is_live(&entry.retired).then_some(handle)
}

/// Whether the entry's id has `name` and `tags` (the memo's tag order).
#[inline]
fn same_strings(entry: &Entry, memo: &Memo, name: &str, tags: &[(&str, &str)]) -> bool {
    #[cfg(test)]
    tests::CONTENT_CHECKS.with(|c| c.set(c.get() + 1));
    match memo.order.get(..tags.len()) {
        Some(order) => entry.id.is_in_order(name, tags, order),
        None => false,
    }
}

/// `f` of the registry's current table (or one that was current during this call).
#[inline]
pub(super) fn with_table<R>(inner: &RegistryInner, mut f: impl FnMut(&Table) -> R) -> R {
    let version = inner.version.load(Ordering::Acquire);
    let done = LOCAL.try_with(|local| {
        let mut local = local.try_borrow_mut().ok()?;
        let local = local.get_or_insert_with(Local::new);
        let (held, old) = local.table(inner, version);
        let result = f(&held.table);
        drop(old);
        Some(result)
    });
    match done {
        Ok(Some(result)) => result,
        _ => f(&inner.table.load()),
    }
}

/// Lets go of this thread's reference to the table of registry `uid` (being dropped, or
/// growing: see `Table::grow`).
pub(super) fn forget(uid: u64) {
    let _ = LOCAL.try_with(|local| {
        let held = {
            let Ok(mut local) = local.try_borrow_mut() else {
                return;
            };
            let Some(local) = local.as_mut() else {
                return;
            };
            let slot = &mut local.held[(uid % HELD as u64) as usize];
            match slot {
                Some(h) if h.registry == uid => slot.take(),
                _ => return,
            }
        };
        // Dropped with the thread's state released: the entries' drops run no lookup, but
        // nothing here depends on that.
        drop(held);
    });
}

#[cfg(test)]
mod tests {
    use crate::Registry;
    use std::cell::Cell;

    thread_local! {
        /// Memo hits on this thread that compared strings.
        pub(super) static CONTENT_CHECKS: Cell<u64> = const { Cell::new(0) };
    }

    fn checks() -> u64 {
        CONTENT_CHECKS.with(Cell::get)
    }

    #[test]
    fn literal_call_sites_hit_without_comparing_strings_and_others_compare() {
        let registry = Registry::default();
        // The first lookup registers the meter, the second fills the memo.
        let first = registry.counter("memo.fixed", &[("status", "200"), ("method", "GET")]);
        registry.counter("memo.fixed", &[("status", "200"), ("method", "GET")]);
        let before = checks();
        for _ in 0..10 {
            let again = registry.counter("memo.fixed", &[("status", "200"), ("method", "GET")]);
            again.increment();
        }
        let fixed = cfg!(all(target_os = "linux", target_pointer_width = "64"));
        assert_eq!(checks() - before, if fixed { 0 } else { 10 });
        assert_eq!(first.count(), 10.0);

        // The same text from the heap: each hit compares it (the first lookup fills the memo).
        let (name, status) = (String::from("memo.fixed"), String::from("200"));
        let tags = [("status", status.as_str()), ("method", "GET")];
        registry.counter(&name, &tags).increment();
        let before = checks();
        for _ in 0..10 {
            registry.counter(&name, &tags).increment();
        }
        assert_eq!(checks() - before, 10);
        assert_eq!(first.count(), 21.0);
    }

    #[test]
    fn a_reused_heap_address_with_other_text_is_another_meter() {
        let registry = Registry::default();
        let mut value = String::from("aaa");
        let at = value.as_ptr();
        for next in ["bbb", "ccc", "ddd"] {
            registry
                .counter("memo.reused", &[("k", value.as_str())])
                .increment();
            // Same buffer, same length, other text.
            value.replace_range(.., next);
            assert_eq!(value.as_ptr(), at);
        }
        for v in ["aaa", "bbb", "ccc"] {
            assert_eq!(
                registry.counter("memo.reused", &[("k", v)]).count(),
                1.0,
                "{v}"
            );
        }
    }
}
