//! A per-thread cache from `metrics::Key` to the handle the recorder made for it.
//!
//! `counter!(name, labels)` asks the recorder for the key at every call. A key made by the
//! macros from literals carries a hash computed at compile time and points at `'static`
//! strings, so a hit here costs a thread-local access, one probe by that hash, pointer
//! comparisons and the handle's `Arc` clone: no lock, no shared-memory write besides the
//! reference count, no hashing, no allocation. A miss asks the registry (which sanitises,
//! applies the meter cap and finds or creates the meter) and remembers the answer.
//!
//! Each thread keeps at most [`MAX_ENTRIES`] keys per metric type; a full map is emptied
//! before the next insert. A cached handle keeps its meter registered (the registry expires
//! only meters no handle refers to) until the entry goes: when the map is emptied or the
//! thread exits.

use hashbrown::{Equivalent, HashMap};
use metrics::Key;
use std::cell::RefCell;
use std::hash::{Hash, Hasher};

use crate::id::PassThroughBuilder;

/// Most keys a thread caches per metric type.
pub(crate) const MAX_ENTRIES: usize = 1024;

/// A recorder's key, owned.
pub(crate) struct CacheKey {
    recorder: u64,
    key: Key,
}

/// A recorder's key, borrowed for a lookup.
struct Probe<'a> {
    recorder: u64,
    key: &'a Key,
}

/// The key's own hash (`metrics` computes it once per key, at compile time for literal
/// keys), set apart per recorder.
fn hash(recorder: u64, key: &Key) -> u64 {
    key.get_hash() ^ recorder.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(hash(self.recorder, &self.key));
    }
}

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(hash(self.recorder, self.key));
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &CacheKey) -> bool {
        self.recorder == other.recorder && same_key(&self.key, &other.key)
    }
}

impl Eq for CacheKey {}

impl Equivalent<CacheKey> for Probe<'_> {
    fn equivalent(&self, stored: &CacheKey) -> bool {
        self.recorder == stored.recorder && same_key(self.key, &stored.key)
    }
}

/// Key equality (as `metrics` defines it: name and labels in order) that first compares
/// pointers: a cached copy of a literal key points at the same `'static` strings.
#[inline]
fn same_key(a: &Key, b: &Key) -> bool {
    if a.get_hash() != b.get_hash() || !same_str(a.name(), b.name()) {
        return false;
    }
    let (x, y) = (a.labels().as_slice(), b.labels().as_slice());
    x.len() == y.len()
        && (std::ptr::eq(x.as_ptr(), y.as_ptr())
            || x.iter()
                .zip(y)
                .all(|(l, m)| same_str(l.key(), m.key()) && same_str(l.value(), m.value())))
}

#[inline]
fn same_str(a: &str, b: &str) -> bool {
    a.len() == b.len() && (std::ptr::eq(a.as_ptr(), b.as_ptr()) || a == b)
}

pub(crate) type Map<V> = HashMap<CacheKey, V, PassThroughBuilder>;

pub(crate) struct Maps {
    pub(crate) counters: Map<metrics::Counter>,
    pub(crate) gauges: Map<metrics::Gauge>,
    pub(crate) histograms: Map<metrics::Histogram>,
}

thread_local! {
    static CACHE: RefCell<Maps> = const {
        RefCell::new(Maps {
            counters: HashMap::with_hasher(PassThroughBuilder),
            gauges: HashMap::with_hasher(PassThroughBuilder),
            histograms: HashMap::with_hasher(PassThroughBuilder),
        })
    };
}

/// Which of a thread's maps.
pub(crate) type Pick<V> = fn(&Maps) -> &Map<V>;
/// Which of a thread's maps, for an insert.
pub(crate) type PickMut<V> = fn(&mut Maps) -> &mut Map<V>;

/// The cached handle for `recorder`'s `key`, or `make()`'s, remembered. Never holds the
/// cache borrowed while `make` runs (it may log, and a log subscriber may record metrics),
/// and falls back to `make` whenever the cache is unavailable (thread exit, re-entry).
#[inline]
pub(crate) fn get_or_make<V: Clone>(
    pick: Pick<V>,
    pick_mut: PickMut<V>,
    recorder: u64,
    key: &Key,
    make: impl FnOnce() -> V,
) -> V {
    let probe = Probe { recorder, key };
    let hit = CACHE
        .try_with(|c| {
            let maps = c.try_borrow().ok()?;
            pick(&maps).get(&probe).cloned()
        })
        .ok()
        .flatten();
    match hit {
        Some(v) => v,
        None => remember(pick_mut, recorder, key, make()),
    }
}

#[cold]
fn remember<V: Clone>(pick_mut: PickMut<V>, recorder: u64, key: &Key, v: V) -> V {
    let _ = CACHE.try_with(|c| {
        if let Ok(mut maps) = c.try_borrow_mut() {
            let map = pick_mut(&mut maps);
            if map.len() >= MAX_ENTRIES {
                *map = Map::with_hasher(PassThroughBuilder);
            }
            map.insert(
                CacheKey {
                    recorder,
                    key: key.clone(),
                },
                v.clone(),
            );
        }
    });
    v
}

/// How many keys this thread caches per metric type (counters, gauges, histograms).
#[cfg(test)]
pub(crate) fn cached_len() -> (usize, usize, usize) {
    CACHE.with(|c| {
        let m = c.borrow();
        (m.counters.len(), m.gauges.len(), m.histograms.len())
    })
}
