//! Meter identities: a name plus tags, immutable and cheap to clone, hash and compare.
//!
//! Tags are kept sorted by key, one value per key (the last one given wins), so two ids built
//! from the same tags in any order are equal. The id keeps the strings as given; the publisher
//! [sanitises](crate::rules::sanitize) them to the Atlas character set on the wire.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The identity of a meter: a name and a set of tags.
///
/// ```
/// use spectator::Id;
/// let id = Id::new("server.numRequests", &[("status", "200"), ("method", "GET")]);
/// assert_eq!(id.to_string(), "server.numRequests:method=GET,status=200");
/// assert_eq!(id.tag("status"), Some("200"));
/// let ok = id.with_tag("status", "OK");
/// assert_eq!(ok.tag("status"), Some("OK"));
/// assert_eq!(id.with_default_stat("count").tag("statistic"), Some("count"));
/// ```
#[derive(Clone)]
pub struct Id {
    /// One allocation: the hash (u64), the tag count n (u32), then 1 + 2n end offsets (u32,
    /// into the text) and the text: the name, then each tag's key and value, tags sorted by
    /// key with unique keys. All little-endian. Equal ids have equal bytes.
    data: Arc<[u8]>,
}

/// Bytes before the end offsets: the hash and the tag count.
const HEADER: usize = 12;

/// Ids up to this size (most: 2 tags take about 80 bytes) are laid out on the stack and
/// copied into their one allocation.
const STACK_BUILD: usize = 192;

/// Tags sorted on the stack (more are sorted in a `Vec`).
const STACK_TAGS: usize = 8;

fn read_u32(b: &[u8], at: usize) -> usize {
    b.get(at..at + 4)
        .and_then(|w| w.try_into().ok())
        .map_or(0, |w| u32::from_le_bytes(w) as usize)
}

impl Id {
    /// An id with the given name and tags. Tags may come in any order; a repeated key keeps
    /// its last value.
    pub fn new(name: &str, tags: &[(&str, &str)]) -> Id {
        sorted_unique(tags.iter().copied(), tags.len(), |sorted| {
            Id::build(name, sorted)
        })
    }

    /// The id of `name` and `sorted` (sorted by key, keys unique).
    fn build(name: &str, sorted: &[(&str, &str)]) -> Id {
        let parts = 1 + 2 * sorted.len();
        let text_len: usize =
            name.len() + sorted.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let text_start = HEADER + 4 * parts;
        let total = text_start + text_len;
        let hash = id_hash(name, sorted.iter().copied());
        let fill = |buf: &mut [u8]| {
            buf[..8].copy_from_slice(&hash.to_le_bytes());
            buf[8..12].copy_from_slice(&(sorted.len() as u32).to_le_bytes());
            let (mut end_at, mut text_at) = (HEADER, text_start);
            let mut put = |part: &str| {
                buf[text_at..text_at + part.len()].copy_from_slice(part.as_bytes());
                text_at += part.len();
                let end = (text_at - text_start) as u32;
                buf[end_at..end_at + 4].copy_from_slice(&end.to_le_bytes());
                end_at += 4;
            };
            put(name);
            for (k, v) in sorted {
                put(k);
                put(v);
            }
        };
        let data: Arc<[u8]> = if total <= STACK_BUILD {
            let mut buf = [0u8; STACK_BUILD];
            fill(&mut buf[..total]);
            Arc::from(&buf[..total])
        } else {
            let mut buf = vec![0u8; total];
            fill(&mut buf);
            Arc::from(buf)
        };
        Id { data }
    }

    fn count(&self) -> usize {
        read_u32(&self.data, 8)
    }

    /// String `i` of the text: 0 the name, `1 + 2j` and `2 + 2j` tag `j`'s key and value.
    #[inline]
    fn part(&self, i: usize) -> &str {
        let text = HEADER + 4 * (1 + 2 * self.count());
        let start = if i == 0 {
            0
        } else {
            read_u32(&self.data, HEADER + 4 * (i - 1))
        };
        let end = read_u32(&self.data, HEADER + 4 * i);
        let bytes = self.data.get(text + start..text + end).unwrap_or_default();
        // SAFETY: the text is whole `str`s copied in by `build`, and the offsets are their
        // boundaries.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The name, then each tag's key and value, in order: one pass over the offsets.
    #[inline]
    pub(crate) fn strings(&self) -> impl Iterator<Item = &str> + '_ {
        let parts = 1 + 2 * self.count();
        let text = HEADER + 4 * parts;
        let mut start = 0;
        let data = &*self.data;
        (0..parts).map(move |i| {
            // SAFETY: `build` wrote `parts` offsets after the header, each the end of one
            // whole `str` in the text after them, in increasing order: the reads and the
            // slice are inside `data`, and the slice is valid UTF-8. (The hot lookup path
            // reads ids this way; `part` is the checked reader.)
            unsafe {
                let at = data.as_ptr().add(HEADER + 4 * i).cast::<u32>();
                let end = u32::from_le(at.read_unaligned()) as usize;
                let bytes = data.get_unchecked(text + start..text + end);
                start = end;
                std::str::from_utf8_unchecked(bytes)
            }
        })
    }

    fn key(&self, j: usize) -> &str {
        self.part(1 + 2 * j)
    }

    fn value(&self, j: usize) -> &str {
        self.part(2 + 2 * j)
    }

    /// The metric name.
    pub fn name(&self) -> &str {
        self.part(0)
    }

    /// The tags, sorted by key.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        (0..self.count()).map(move |j| (self.key(j), self.value(j)))
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.key(mid).cmp(key) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(self.value(mid)),
            }
        }
        None
    }

    /// This id with tag `key` set to `value` (replacing any previous value).
    pub fn with_tag(&self, key: &str, value: &str) -> Id {
        self.with_tags(&[(key, value)])
    }

    /// This id with all of `tags` set (replacing previous values of the same keys).
    pub fn with_tags(&self, tags: &[(&str, &str)]) -> Id {
        if tags.is_empty() {
            return self.clone();
        }
        // Ours first: the stable sort keeps the new value of a key after the old one, and
        // the last one wins.
        let all = self.tags().chain(tags.iter().copied());
        sorted_unique(all, self.count() + tags.len(), |sorted| {
            Id::build(self.name(), sorted)
        })
    }

    /// This id with `statistic` set to `stat`, replacing any statistic it had.
    pub fn with_stat(&self, stat: &str) -> Id {
        self.with_tag("statistic", stat)
    }

    /// This id with `statistic` set to `stat` unless it already has a statistic.
    pub fn with_default_stat(&self, stat: &str) -> Id {
        if self.tag("statistic").is_some() {
            self.clone()
        } else {
            self.with_stat(stat)
        }
    }

    /// Number of tags.
    pub fn tag_count(&self) -> usize {
        self.count()
    }

    /// The id's hash (what it feeds a [`Hasher`]).
    pub(crate) fn hash_value(&self) -> u64 {
        self.data
            .get(..8)
            .and_then(|w| w.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
}

/// `f` of `pairs` sorted by key, a repeated key keeping its last value; on the stack for up
/// to [`STACK_TAGS`] pairs.
fn sorted_unique<'a, R>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    len: usize,
    f: impl FnOnce(&[(&'a str, &'a str)]) -> R,
) -> R {
    fn unique<'a>(v: &mut [(&'a str, &'a str)]) -> usize {
        // Stable: among equal keys the given order stays, so the last one wins below.
        v.sort_by(|a, b| a.0.cmp(b.0));
        let mut n = 0;
        for i in 0..v.len() {
            if n > 0 && v[n - 1].0 == v[i].0 {
                v[n - 1] = v[i];
            } else {
                v[n] = v[i];
                n += 1;
            }
        }
        n
    }
    if len <= STACK_TAGS {
        let mut buf = [("", ""); STACK_TAGS];
        let mut n = 0;
        for (slot, pair) in buf.iter_mut().zip(pairs) {
            *slot = pair;
            n += 1;
        }
        let n = unique(&mut buf[..n]);
        f(&buf[..n])
    } else {
        let mut v: Vec<_> = pairs.collect();
        let n = unique(&mut v);
        f(&v[..n])
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        Arc::ptr_eq(&self.data, &other.data) || self.data == other.data
    }
}

impl Eq for Id {}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_value());
    }
}

impl Ord for Id {
    fn cmp(&self, other: &Id) -> Ordering {
        self.name()
            .cmp(other.name())
            .then_with(|| self.tags().cmp(other.tags()))
    }
}

impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Id) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        for (i, (k, v)) in self.tags().enumerate() {
            f.write_str(if i == 0 { ":" } else { "," })?;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({self})")
    }
}

/// A borrowed view of an id-to-be, used to probe the registry without allocating.
///
/// Only built for tag slices without repeated keys (see [`IdRef::new`]), so that "same
/// tags" means the same set of pairs in any order.
pub(crate) struct IdRef<'a> {
    name: &'a str,
    tags: &'a [(&'a str, &'a str)],
    /// Indexes into `tags` in key order (the order an [`Id`] stores its tags), for the
    /// first `tags.len()` entries when there are at most [`SORTED_MAX`] tags.
    order: [u8; SORTED_MAX],
    hash: u64,
}

/// Up to this many tags (Atlas takes at most 20 user tags), a lookup sorts the caller's tags
/// by index on the stack, hashes them in key order and compares them with the stored ones
/// pairwise; beyond, it sorts a copy and searches for each.
const SORTED_MAX: usize = 32;

impl<'a> IdRef<'a> {
    /// `None` when `tags` repeats a key: such lookups take the allocating path. More than
    /// [`SORTED_MAX`] tags cost one allocation (to hash them in key order).
    #[inline]
    pub(crate) fn new(name: &'a str, tags: &'a [(&'a str, &'a str)]) -> Option<IdRef<'a>> {
        let mut order = [0u8; SORTED_MAX];
        if tags.len() <= SORTED_MAX {
            // Insertion sort of the indexes: callers pass few tags, often already sorted.
            for i in 1..tags.len() {
                let key = tags[i].0;
                let mut j = i;
                while j > 0 {
                    match key_cmp(tags[usize::from(order[j - 1])].0, key) {
                        Ordering::Less => break,
                        Ordering::Equal => return None,
                        Ordering::Greater => {
                            order[j] = order[j - 1];
                            j -= 1;
                        }
                    }
                }
                order[j] = i as u8;
            }
            let sorted = order[..tags.len()].iter().map(|&i| tags[usize::from(i)]);
            return Some(IdRef {
                name,
                tags,
                order,
                hash: id_hash(name, sorted),
            });
        }
        let mut sorted = tags.to_vec();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        Some(IdRef {
            name,
            tags,
            order,
            hash: id_hash(name, sorted.into_iter()),
        })
    }
}

impl IdRef<'_> {
    /// The caller's tag indexes in key order, when there are at most [`SORTED_MAX`] tags.
    pub(crate) fn order(&self) -> Option<&[u8]> {
        self.order.get(..self.tags.len())
    }
}

impl Id {
    /// Whether `name` and `tags` are this id, `tags[order[j]]` being its `j`-th tag (a
    /// permutation an [`IdRef`] of an equal id computed; any slice of the same length may be
    /// checked with it).
    #[inline]
    pub(crate) fn is_in_order(&self, name: &str, tags: &[(&str, &str)], order: &[u8]) -> bool {
        let n = self.count();
        if tags.len() != n || order.len() != n {
            return false;
        }
        let mut stored = self.strings();
        if !stored.next().is_some_and(|s| short_eq(name, s)) {
            return false;
        }
        for &i in order {
            let (Some((k, v)), Some(sk), Some(sv)) =
                (tags.get(usize::from(i)), stored.next(), stored.next())
            else {
                return false;
            };
            if !short_eq(k, sk) || !short_eq(v, sv) {
                return false;
            }
        }
        true
    }
}

impl Hash for IdRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl hashbrown::Equivalent<Id> for IdRef<'_> {
    #[inline]
    fn equivalent(&self, id: &Id) -> bool {
        if self.hash != id.hash_value() || self.tags.len() != id.count() {
            return false;
        }
        if let Some(order) = self.order() {
            return id.is_in_order(self.name, self.tags, order);
        }
        short_eq(self.name, id.name())
            && self
                .tags
                .iter()
                .all(|(k, v)| id.tags().any(|(sk, sv)| short_eq(k, sk) && short_eq(v, sv)))
    }
}

/// `a.cmp(b)`, deciding on the first bytes when they differ (most keys do) instead of a
/// call into the C library's `memcmp`.
#[inline]
fn key_cmp(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

/// The 8 bytes of `b` from `at`, little-endian; `at + 8 <= b.len()`.
#[inline(always)]
fn word8(b: &[u8], at: usize) -> u64 {
    debug_assert!(at + 8 <= b.len());
    // SAFETY: every caller checks `at + 8 <= b.len()` first (the hash and compare loops
    // read whole words inside the string only); read_unaligned takes any alignment.
    u64::from_le(unsafe { b.as_ptr().add(at).cast::<u64>().read_unaligned() })
}

/// The 4 bytes of `b` from `at`, little-endian; `at + 4 <= b.len()`.
#[inline(always)]
fn word4(b: &[u8], at: usize) -> u64 {
    debug_assert!(at + 4 <= b.len());
    // SAFETY: as for `word8`, with 4 bytes.
    u64::from(u32::from_le(unsafe {
        b.as_ptr().add(at).cast::<u32>().read_unaligned()
    }))
}

/// String equality for the short strings of names and tags, inlined, a word at a time (the
/// last word overlapping the one before): a call into the C library's `memcmp` per
/// comparison cost more than the comparison itself.
#[inline]
fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len >= 8 {
        let mut at = 0;
        while at + 8 < len {
            if word8(a, at) != word8(b, at) {
                return false;
            }
            at += 8;
        }
        word8(a, len - 8) == word8(b, len - 8)
    } else if len >= 4 {
        word4(a, 0) == word4(b, 0) && word4(a, len - 4) == word4(b, len - 4)
    } else if len > 0 {
        // 1 to 3 bytes: the first, middle and last cover them all.
        a[0] == b[0] && a[len / 2] == b[len / 2] && a[len - 1] == b[len - 1]
    } else {
        true
    }
}

const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;
const K2: u64 = 0xa409_3822_299f_31d0;
const K3: u64 = 0x082e_fa98_ec4e_6c89;

/// The folded multiply: the high and low halves of the 128-bit product, xored.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Folds `s` into the hash `state`: its bytes read as (at most) two overlapping words
/// (longer strings 16 bytes at a time), then one folded multiply with the length. Not keyed:
/// the registry compares the strings of a hash match, so a collision costs a probe, never a
/// wrong meter.
#[inline(always)]
fn fold_str(state: u64, s: &str) -> u64 {
    let b = s.as_bytes();
    let len = b.len();
    let (lo, hi) = if len >= 8 {
        let mut acc = state;
        let mut at = 0;
        while at + 16 < len {
            acc = fold(acc ^ word8(b, at) ^ K2, word8(b, at + 8) ^ K3);
            at += 16;
        }
        (acc ^ word8(b, len.max(16) - 16), word8(b, len - 8))
    } else if len >= 4 {
        (state ^ word4(b, 0), word4(b, len - 4))
    } else if len > 0 {
        let byte = |i: usize| u64::from(b[i]);
        (
            state ^ ((byte(0) << 16) | (byte(len / 2) << 8) | byte(len - 1)),
            0,
        )
    } else {
        (state, 0)
    };
    fold(lo ^ K0, hi ^ K1 ^ len as u64)
}

/// Hash of a name and its tags in key order (the order an [`Id`] stores them; an [`IdRef`]
/// visits the caller's tags through its sorted indexes).
#[inline]
fn id_hash<'a>(name: &str, sorted_tags: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut state = fold_str(K3, name);
    for (k, v) in sorted_tags {
        state = fold_str(fold_str(state ^ K2, k), v);
    }
    state
}

/// The strings' hash alone, for the tests.
#[cfg(test)]
fn str_hash(s: &str) -> u64 {
    fold_str(0, s)
}

/// Hasher for keys that hash themselves to one well-mixed `u64` (`Id`, `IdRef`, and the
/// metrics facade's cache keys): the value passes through unchanged.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not used by those keys; kept correct for any other key.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Builds [`PassThrough`] hashers (a `const`-constructible `BuildHasherDefault`).
#[derive(Clone, Copy, Default)]
pub(crate) struct PassThroughBuilder;

impl std::hash::BuildHasher for PassThroughBuilder {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashbrown::Equivalent;
    use std::collections::hash_map::DefaultHasher;

    fn h(x: &impl Hash) -> u64 {
        let mut s = DefaultHasher::new();
        x.hash(&mut s);
        s.finish()
    }

    #[test]
    fn tags_sorted_and_last_value_wins() {
        let id = Id::new("n", &[("b", "1"), ("a", "2"), ("b", "3")]);
        assert_eq!(id.tags().collect::<Vec<_>>(), vec![("a", "2"), ("b", "3")]);
        assert_eq!(id.to_string(), "n:a=2,b=3");
    }

    #[test]
    fn order_does_not_matter_for_eq_and_hash() {
        let a = Id::new("n", &[("x", "1"), ("y", "2")]);
        let b = Id::new("n", &[("y", "2"), ("x", "1")]);
        assert_eq!(a, b);
        assert_eq!(h(&a), h(&b));
        assert_ne!(a, Id::new("n", &[("x", "2"), ("y", "1")]));
        assert_ne!(a, Id::new("m", &[("x", "1"), ("y", "2")]));
    }

    #[test]
    fn id_ref_matches_id() {
        let id = Id::new("n", &[("x", "1"), ("y", "2")]);
        let tags = [("y", "2"), ("x", "1")];
        let r = IdRef::new("n", &tags).unwrap();
        assert!(r.equivalent(&id));
        assert_eq!(h(&r), h(&id));
        let other = [("y", "2")];
        assert!(!IdRef::new("n", &other).unwrap().equivalent(&id));
        assert!(IdRef::new("n", &[("a", "1"), ("a", "2")]).is_none());
    }

    #[test]
    fn id_ref_finds_the_id_whatever_the_tag_order() {
        // Up to SORTED_MAX tags the lookup sorts them; beyond, it searches: both sides.
        for n in 0..=SORTED_MAX + 3 {
            let keys: Vec<String> = (0..n).map(|i| format!("k{}", (i * 7) % 41)).collect();
            let values: Vec<String> = (0..n).map(|i| format!("value-{i}")).collect();
            let mut tags: Vec<(&str, &str)> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let id = Id::new("some.meterName", &tags);
            for round in 0..4 {
                tags.rotate_left(usize::from(n > 0));
                if round % 2 == 1 {
                    tags.reverse();
                }
                let r = IdRef::new("some.meterName", &tags).unwrap();
                assert!(r.equivalent(&id), "{n} tags, {tags:?}");
                assert_eq!(h(&r), h(&id));
                assert!(!IdRef::new("some.meterNamf", &tags).unwrap().equivalent(&id));
            }
            if n > 0 {
                // One value changed in its last byte, or one key dropped: not the id.
                let mut other = tags.clone();
                let changed = format!("{}x", &other[0].1[..other[0].1.len() - 1]);
                other[0].1 = &changed;
                assert!(!IdRef::new("some.meterName", &other)
                    .unwrap()
                    .equivalent(&id));
                assert!(!IdRef::new("some.meterName", &tags[1..])
                    .unwrap()
                    .equivalent(&id));
                // A repeated key is never a borrowed key.
                let mut dup = tags.clone();
                dup.push((tags[0].0, "again"));
                assert!(IdRef::new("some.meterName", &dup).is_none());
            }
        }
    }

    #[test]
    fn short_eq_and_str_hash_see_every_byte() {
        let base: String = (0..40).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(short_eq(a, a));
            for at in 0..len {
                let mut b = a.as_bytes().to_vec();
                b[at] ^= 0x20; // a letter's other case
                let b = std::str::from_utf8(&b).unwrap();
                assert!(!short_eq(a, b), "{a} vs {b}");
                assert_ne!(str_hash(a), str_hash(b), "{a} vs {b}");
            }
            assert!(!short_eq(a, &base[..len.saturating_sub(1)]) || len == 0);
        }
        assert_eq!(key_cmp("b", "a"), Ordering::Greater);
        assert_eq!(key_cmp("ab", "a"), Ordering::Greater);
        assert_eq!(key_cmp("", "a"), Ordering::Less);
        assert_eq!(key_cmp("a", "a"), Ordering::Equal);
    }

    #[test]
    fn large_ids_and_any_text_round_trip() {
        // Past the stack sizes (tags and bytes) and with multi-byte characters.
        let long = "ü".repeat(400);
        let keys: Vec<String> = (0..40).map(|i| format!("k{i:02}")).collect();
        let mut tags: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
        tags.push(("k07", long.as_str())); // a repeated key: the last value wins
        let id = Id::new("név", &tags);
        assert_eq!(id.name(), "név");
        assert_eq!(id.tag_count(), 40);
        assert_eq!(id.tag("k07"), Some(long.as_str()));
        assert_eq!(id.tag("k39"), Some("v"));
        assert_eq!(id.tag("k40"), None);
        let sorted: Vec<&str> = id.tags().map(|(k, _)| k).collect();
        assert_eq!(sorted, keys.iter().map(String::as_str).collect::<Vec<_>>());
        tags.reverse();
        tags.retain(|t| *t != ("k07", "v"));
        let again = Id::new("név", &tags);
        assert_eq!(again, id);
        assert_eq!(h(&again), h(&id));
        let changed = id.with_tags(&[("k07", "short"), ("a", "first")]);
        assert_eq!(changed.tag("k07"), Some("short"));
        assert_eq!(changed.tags().next(), Some(("a", "first")));
        assert_eq!(changed.tag_count(), 41);
        assert_ne!(changed, id);
        assert!(id.to_string().starts_with("név:k00=v,k01=v"));
        let r = IdRef::new("név", &tags[..]).unwrap();
        assert!(r.equivalent(&id));
    }

    #[test]
    fn stats() {
        let id = Id::new("n", &[("statistic", "percentile")]);
        assert_eq!(
            id.with_default_stat("count").tag("statistic"),
            Some("percentile")
        );
        assert_eq!(id.with_stat("count").tag("statistic"), Some("count"));
        assert_eq!(Id::new("", &[]).to_string(), "");
    }

    #[test]
    fn ordering_is_by_name_then_tags() {
        let mut v = [
            Id::new("b", &[]),
            Id::new("a", &[("k", "2")]),
            Id::new("a", &[("k", "1")]),
        ];
        v.sort();
        let s: Vec<String> = v.iter().map(|i| i.to_string()).collect();
        assert_eq!(s, ["a:k=1", "a:k=2", "b"]);
    }
}
