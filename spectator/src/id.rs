//! Meter identities: a name plus tags, immutable and cheap to clone, hash and compare.
//!
//! Tags are kept sorted by key, one value per key (the last one given wins), so two ids built
//! from the same tags in any order are equal. The id keeps the strings as given; the publisher
//! [sanitises](crate::rules::sanitize) them to the Atlas character set on the wire.
//!
//! The ids a meter reports under (its id plus `statistic=count`, or plus `statistic=percentile`
//! and `percentile=T0042`) share the meter id's allocation and carry the added tags as small
//! codes, so a meter stores none of them and a poll makes each with one reference count
//! increment. They read, compare and hash exactly like ids with the same tags stored.

use crate::measurement::Op;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use triomphe::ThinArc;

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
    /// One allocation behind a thin pointer: in its header the hash accumulator of the name
    /// and tags ([`id_acc`]), then the bytes: the tag count n (u32), 1 + 2n end offsets (u32,
    /// into the text) and the text: the name, then each tag's key and value, tags sorted by
    /// key with unique keys. All little-endian. Equal ids of the same `derived` have equal
    /// bytes.
    data: ThinArc<u64, u8>,
    /// The `statistic` (and `percentile`) tags that a meter's reporting ids add to its id,
    /// kept as codes beside the shared allocation instead of in a copy of it: a meter's
    /// reporting id costs a reference count, not an allocation of its own.
    derived: Derived,
    /// The low 32 bits of [`hash_value`](Id::hash_value), beside the pointer (where `Id`
    /// would have padding): the registry's table places and tells ids apart by it without
    /// reading their allocation.
    short_hash: u32,
}

/// Bytes before the end offsets: the tag count.
const HEADER: usize = 4;

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

/// The statistics the meters report under (`statistic=<name>`): a reporting id carries one
/// as a code rather than as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stat {
    Count = 1,
    TotalTime,
    TotalAmount,
    TotalOfSquares,
    Max,
    Gauge,
    Percentile,
    ActiveTasks,
    Duration,
}

impl Stat {
    const ALL: [Stat; 9] = [
        Stat::Count,
        Stat::TotalTime,
        Stat::TotalAmount,
        Stat::TotalOfSquares,
        Stat::Max,
        Stat::Gauge,
        Stat::Percentile,
        Stat::ActiveTasks,
        Stat::Duration,
    ];

    /// The tag value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Stat::Count => "count",
            Stat::TotalTime => "totalTime",
            Stat::TotalAmount => "totalAmount",
            Stat::TotalOfSquares => "totalOfSquares",
            Stat::Max => "max",
            Stat::Gauge => "gauge",
            Stat::Percentile => "percentile",
            Stat::ActiveTasks => "activeTasks",
            Stat::Duration => "duration",
        }
    }

    fn from_name(name: &str) -> Option<Stat> {
        Stat::ALL.into_iter().find(|s| s.name() == name)
    }

    fn from_code(code: u32) -> Option<Stat> {
        Stat::ALL.get((code as usize).checked_sub(1)?).copied()
    }

    /// How its values combine ([`Op::from_statistic`] of its name).
    pub(crate) fn op(self) -> Op {
        match self {
            Stat::Count
            | Stat::TotalTime
            | Stat::TotalAmount
            | Stat::TotalOfSquares
            | Stat::Percentile => Op::Add,
            Stat::Max | Stat::Gauge | Stat::ActiveTasks | Stat::Duration => Op::Max,
        }
    }
}

/// The percentile buckets a reporting id can name: `T` (timers) or `D` (distribution
/// summaries) and the bucket index as 4 hex digits.
const BUCKETS: usize = crate::meter::percentile_buckets::LENGTH;

/// The `percentile` tag values, `T0000` .. `T0113` then `D0000` .. `D0113`.
static BUCKET_TAGS: [[u8; 5]; 2 * BUCKETS] = bucket_tags();

const fn bucket_tags() -> [[u8; 5]; 2 * BUCKETS] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = [[0u8; 5]; 2 * BUCKETS];
    let mut k = 0;
    while k < 2 * BUCKETS {
        let i = k % BUCKETS;
        out[k][0] = if k < BUCKETS { b'T' } else { b'D' };
        out[k][1] = HEX[(i >> 12) & 15];
        out[k][2] = HEX[(i >> 8) & 15];
        out[k][3] = HEX[(i >> 4) & 15];
        out[k][4] = HEX[i & 15];
        k += 1;
    }
    out
}

/// A percentile meter's kind, the first letter of its bucket tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BucketPrefix {
    /// `T`: percentile timers.
    Timer,
    /// `D`: percentile distribution summaries.
    Summary,
}

/// The derived tags of an id: bits 0-3 a [`Stat`] code (0: none), bits 4-13 one plus the
/// index into [`BUCKET_TAGS`] of its `percentile` tag (0: none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Derived(u32);

const STAT_KEY: &str = "statistic";
const PERCENTILE_KEY: &str = "percentile";

impl Derived {
    fn stat(self) -> Option<Stat> {
        Stat::from_code(self.0 & 15)
    }

    fn with_stat(self, stat: Stat) -> Derived {
        Derived((self.0 & !15) | stat as u32)
    }

    fn bucket_tag(self) -> Option<&'static str> {
        let k = (self.0 >> 4).checked_sub(1)?;
        let bytes = BUCKET_TAGS.get(k as usize)?;
        std::str::from_utf8(bytes).ok()
    }

    fn with_bucket(self, prefix: BucketPrefix, index: usize) -> Derived {
        let k = index.min(BUCKETS - 1)
            + match prefix {
                BucketPrefix::Timer => 0,
                BucketPrefix::Summary => BUCKETS,
            };
        Derived((self.0 & 15) | ((k as u32 + 1) << 4))
    }

    /// Its tags in key order (`percentile` sorts before `statistic`), and how many.
    fn tags(self) -> ([(&'static str, &'static str); 2], usize) {
        let mut tags = [("", ""); 2];
        let mut n = 0;
        if let Some(b) = self.bucket_tag() {
            tags[n] = (PERCENTILE_KEY, b);
            n += 1;
        }
        if let Some(s) = self.stat() {
            tags[n] = (STAT_KEY, s.name());
            n += 1;
        }
        (tags, n)
    }

    /// Its part of an id's hash accumulator (each poll derives an id per measurement: the
    /// parts of the few possible tags are computed once).
    fn acc(self) -> u64 {
        static PARTS: std::sync::OnceLock<Box<[u64]>> = std::sync::OnceLock::new();
        let parts = PARTS.get_or_init(|| {
            // Statistic codes 0..16 (0: none), then one plus each bucket tag's index.
            let stats = (0..16u32)
                .map(|code| Stat::from_code(code).map_or(0, |s| pair_acc(STAT_KEY, s.name())));
            let buckets = (0..=BUCKET_TAGS.len()).map(|k| {
                Derived((k as u32) << 4)
                    .bucket_tag()
                    .map_or(0, |b| pair_acc(PERCENTILE_KEY, b))
            });
            stats.chain(buckets).collect()
        });
        let stat = parts.get((self.0 & 15) as usize).copied().unwrap_or(0);
        let bucket = parts.get(16 + (self.0 >> 4) as usize).copied().unwrap_or(0);
        stat.wrapping_add(bucket)
    }
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
        Id::build_with_acc(name, sorted, id_acc(name, sorted.iter().copied()))
    }

    /// [`Id::build`] with the hash accumulator of `name` and `sorted` already computed.
    fn build_with_acc(name: &str, sorted: &[(&str, &str)], acc: u64) -> Id {
        let parts = 1 + 2 * sorted.len();
        let text_len: usize =
            name.len() + sorted.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        let text_start = HEADER + 4 * parts;
        let total = text_start + text_len;
        let fill = |buf: &mut [u8]| {
            buf[..4].copy_from_slice(&(sorted.len() as u32).to_le_bytes());
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
        let data = if total <= STACK_BUILD {
            let mut buf = [0u8; STACK_BUILD];
            fill(&mut buf[..total]);
            ThinArc::from_header_and_slice(acc, &buf[..total])
        } else {
            let mut buf = vec![0u8; total];
            fill(&mut buf);
            ThinArc::from_header_and_slice(acc, &buf)
        };
        Id {
            data,
            derived: Derived::default(),
            short_hash: finish(acc) as u32,
        }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        &self.data.slice
    }

    /// Number of tags stored in the allocation (the derived ones not included).
    fn count(&self) -> usize {
        read_u32(self.bytes(), 0)
    }

    /// String `i` of the text: 0 the name, `1 + 2j` and `2 + 2j` stored tag `j`'s key and
    /// value.
    #[inline]
    fn part(&self, i: usize) -> &str {
        let data = self.bytes();
        let text = HEADER + 4 * (1 + 2 * self.count());
        let start = if i == 0 {
            0
        } else {
            read_u32(data, HEADER + 4 * (i - 1))
        };
        let end = read_u32(data, HEADER + 4 * i);
        let bytes = data.get(text + start..text + end).unwrap_or_default();
        // SAFETY: the text is whole `str`s copied in by `build`, and the offsets are their
        // boundaries.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The name, then each stored tag's key and value, in order: one pass over the offsets.
    /// Lookups compare registered ids, which have no derived tags, this way.
    #[inline]
    pub(crate) fn strings(&self) -> impl Iterator<Item = &str> + '_ {
        let parts = 1 + 2 * self.count();
        let text = HEADER + 4 * parts;
        let mut start = 0;
        let data = self.bytes();
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
    pub fn tags(&self) -> Tags<'_> {
        let (derived, derived_len) = self.derived.tags();
        Tags {
            id: self,
            next: 0,
            len: self.count(),
            derived,
            next_derived: 0,
            derived_len,
        }
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        if self.derived != Derived::default() {
            let (derived, n) = self.derived.tags();
            if let Some(&(_, v)) = derived[..n].iter().find(|(k, _)| *k == key) {
                return Some(v);
            }
        }
        self.stored_tag(key)
    }

    /// The value of tag `key` among the stored (not derived) tags.
    fn stored_tag(&self, key: &str) -> Option<&str> {
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
        sorted_unique(all, self.tag_count() + tags.len(), |sorted| {
            Id::build(self.name(), sorted)
        })
    }

    /// This id with `statistic` set to `stat`, replacing any statistic it had.
    pub fn with_stat(&self, stat: &str) -> Id {
        match Stat::from_name(stat) {
            Some(s) => self.with_stat_of(s),
            None => self.with_tag(STAT_KEY, stat),
        }
    }

    /// This id with `statistic` set to `stat` unless it already has a statistic.
    pub fn with_default_stat(&self, stat: &str) -> Id {
        if self.tag(STAT_KEY).is_some() {
            self.clone()
        } else {
            self.with_stat(stat)
        }
    }

    /// This id with `statistic` set to `stat`, replacing any statistic it had: without an
    /// allocation unless the statistic is one of its stored tags.
    pub(crate) fn with_stat_of(&self, stat: Stat) -> Id {
        if self.stored_tag(STAT_KEY).is_some() {
            return self.with_tag(STAT_KEY, stat.name());
        }
        Id::derived(&self.data, self.derived.with_stat(stat))
    }

    /// [`with_stat_of`](Id::with_stat_of) unless the id already has a statistic.
    pub(crate) fn with_default_stat_of(&self, stat: Stat) -> Id {
        if self.tag(STAT_KEY).is_some() {
            self.clone()
        } else {
            self.with_stat_of(stat)
        }
    }

    /// The id of percentile bucket `index` of a percentile meter with this id:
    /// `statistic=percentile`, `percentile=<T or D><index as 4 hex digits>`.
    pub(crate) fn with_bucket(&self, prefix: BucketPrefix, index: usize) -> Id {
        if self.stored_tag(STAT_KEY).is_some() || self.stored_tag(PERCENTILE_KEY).is_some() {
            let bucket = Derived::default().with_bucket(prefix, index);
            return self.with_tags(&[
                (STAT_KEY, Stat::Percentile.name()),
                (PERCENTILE_KEY, bucket.bucket_tag().unwrap_or_default()),
            ]);
        }
        let derived = self.derived.with_stat(Stat::Percentile);
        Id::derived(&self.data, derived.with_bucket(prefix, index))
    }

    /// The id of `data`'s name and tags with the `derived` ones.
    fn derived(data: &ThinArc<u64, u8>, derived: Derived) -> Id {
        let acc = data.header.header.wrapping_add(derived.acc());
        Id {
            data: data.clone(),
            derived,
            short_hash: finish(acc) as u32,
        }
    }

    /// The low 32 bits of its hash, read without touching its allocation.
    #[inline]
    pub(crate) fn short_hash(&self) -> u32 {
        self.short_hash
    }

    /// This id with every tag stored in its own allocation: the form the registry keeps.
    pub(crate) fn stored(&self) -> Id {
        if self.derived == Derived::default() {
            return self.clone();
        }
        let tags: Vec<(&str, &str)> = self.tags().collect();
        Id::build(self.name(), &tags)
    }

    /// Number of tags.
    pub fn tag_count(&self) -> usize {
        self.count() + self.derived.tags().1
    }

    /// The id's hash (what it feeds a [`Hasher`]): the same for equal ids, derived tags or
    /// not.
    #[inline]
    pub(crate) fn hash_value(&self) -> u64 {
        let acc = self.data.header.header;
        if self.derived == Derived::default() {
            finish(acc)
        } else {
            finish(acc.wrapping_add(self.derived.acc()))
        }
    }
}

/// The tags of an [`Id`], sorted by key (see [`Id::tags`]).
///
/// ```
/// let id = spectator::Id::new("m", &[("zone", "a"), ("app", "b")]).with_stat("count");
/// let tags: Vec<_> = id.tags().collect();
/// assert_eq!(tags, [("app", "b"), ("statistic", "count"), ("zone", "a")]);
/// assert_eq!(id.tags().len(), 3);
/// ```
#[derive(Clone)]
pub struct Tags<'a> {
    id: &'a Id,
    /// The next stored tag, of `len`.
    next: usize,
    len: usize,
    /// The derived tags, in key order: the next one, of `derived_len`.
    derived: [(&'static str, &'static str); 2],
    next_derived: usize,
    derived_len: usize,
}

impl<'a> Iterator for Tags<'a> {
    type Item = (&'a str, &'a str);

    #[inline]
    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let derived = self.derived.get(self.next_derived).copied();
        let derived = derived.filter(|_| self.next_derived < self.derived_len);
        if self.next < self.len {
            let key = self.id.key(self.next);
            let stored_first = match derived {
                Some((dk, _)) => key < dk,
                None => true,
            };
            if stored_first {
                let value = self.id.value(self.next);
                self.next += 1;
                return Some((key, value));
            }
        }
        if derived.is_some() {
            self.next_derived += 1;
        }
        derived
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.len - self.next) + (self.derived_len - self.next_derived);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Tags<'_> {}

impl fmt::Debug for Tags<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
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
        if self.short_hash != other.short_hash {
            return false; // equal ids have equal hashes
        }
        if self.derived == other.derived {
            return self.data.ptr() == other.data.ptr()
                || (self.data.header.header == other.data.header.header
                    && self.bytes() == other.bytes());
        }
        // One has a tag derived that the other stores (or other derived tags over other
        // stored ones): compare what they say.
        self.hash_value() == other.hash_value()
            && self.name() == other.name()
            && self.tags().eq(other.tags())
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
    /// The hash accumulator of the name and tags ([`id_acc`]), and its hash.
    acc: u64,
    hash: u64,
}

/// Up to this many tags (Atlas takes at most 20 user tags), a lookup sorts the caller's tags
/// by index on the stack and compares them with the stored ones pairwise; beyond, it sorts a
/// copy (to find repeated keys) and searches for each.
const SORTED_MAX: usize = 32;

impl<'a> IdRef<'a> {
    /// `None` when `tags` repeats a key: such lookups take the allocating path. More than
    /// [`SORTED_MAX`] tags cost one allocation (to find repeated keys).
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
            let acc = id_acc(name, tags.iter().copied());
            return Some(IdRef {
                name,
                tags,
                order,
                acc,
                hash: finish(acc),
            });
        }
        let mut sorted = tags.to_vec();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return None;
        }
        let acc = id_acc(name, tags.iter().copied());
        Some(IdRef {
            name,
            tags,
            order,
            acc,
            hash: finish(acc),
        })
    }
}

impl IdRef<'_> {
    /// The caller's tag indexes in key order, when there are at most [`SORTED_MAX`] tags.
    pub(crate) fn order(&self) -> Option<&[u8]> {
        self.order.get(..self.tags.len())
    }

    /// The id it stands for, made without sorting or hashing the tags again (a registration
    /// after a lookup that missed).
    pub(crate) fn to_id(&self) -> Id {
        match self.order() {
            Some(order) if order.len() <= STACK_TAGS => {
                let mut sorted = [("", ""); STACK_TAGS];
                for (slot, &i) in sorted.iter_mut().zip(order) {
                    *slot = self.tags[usize::from(i)];
                }
                Id::build_with_acc(self.name, &sorted[..order.len()], self.acc)
            }
            _ => Id::new(self.name, self.tags),
        }
    }
}

impl Id {
    /// Whether `name` and `tags` are this id, `tags[order[j]]` being its `j`-th tag (a
    /// permutation an [`IdRef`] of an equal id computed; any slice of the same length may be
    /// checked with it).
    #[inline]
    pub(crate) fn is_in_order(&self, name: &str, tags: &[(&str, &str)], order: &[u8]) -> bool {
        let n = self.count();
        if tags.len() != n || order.len() != n || self.derived != Derived::default() {
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

/// A key the registry's table can look up: its hash's low 32 bits, and whether it is an id.
pub(crate) trait TableKey: hashbrown::Equivalent<Id> {
    fn short_hash(&self) -> u32;
}

impl TableKey for Id {
    #[inline]
    fn short_hash(&self) -> u32 {
        self.short_hash
    }
}

impl TableKey for IdRef<'_> {
    #[inline]
    fn short_hash(&self) -> u32 {
        self.hash as u32
    }
}

impl hashbrown::Equivalent<Id> for IdRef<'_> {
    #[inline]
    fn equivalent(&self, id: &Id) -> bool {
        // The short hash first: it is in the id itself, the rest behind its pointer.
        if self.hash as u32 != id.short_hash
            || self.hash != id.hash_value()
            || self.tags.len() != id.tag_count()
        {
            return false;
        }
        if let (Some(order), true) = (self.order(), id.derived == Derived::default()) {
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

/// The hash accumulator of a name and its tags: the name's hash plus each tag's, so that the
/// tags may be added in any order (a lookup adds the caller's as given) and a derived tag
/// adds its own part without the others ([`Derived::acc`]).
#[inline]
fn id_acc<'a>(name: &str, tags: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    tags.fold(fold_str(K3, name), |acc, (k, v)| {
        acc.wrapping_add(pair_acc(k, v))
    })
}

/// One tag's part of an id's hash accumulator.
#[inline(always)]
fn pair_acc(key: &str, value: &str) -> u64 {
    fold_str(fold_str(K2, key), value)
}

/// The hash of an accumulator.
#[inline(always)]
fn finish(acc: u64) -> u64 {
    fold(acc ^ K0, K1)
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
    fn derived_tags_read_and_compare_as_stored_ones() {
        let base = Id::new(
            "rpc.latency",
            &[("zone", "a"), ("peer", "b"), ("result", "ok")],
        );
        for (derived, stored) in [
            (
                base.with_stat_of(Stat::TotalTime),
                Id::new(
                    "rpc.latency",
                    &[
                        ("zone", "a"),
                        ("peer", "b"),
                        ("result", "ok"),
                        ("statistic", "totalTime"),
                    ],
                ),
            ),
            (
                base.with_bucket(BucketPrefix::Timer, 0x2a),
                Id::new(
                    "rpc.latency",
                    &[
                        ("percentile", "T002A"),
                        ("statistic", "percentile"),
                        ("zone", "a"),
                        ("peer", "b"),
                        ("result", "ok"),
                    ],
                ),
            ),
            (
                base.with_bucket(BucketPrefix::Summary, 275),
                Id::new(
                    "rpc.latency",
                    &[
                        ("percentile", "D0113"),
                        ("statistic", "percentile"),
                        ("zone", "a"),
                        ("peer", "b"),
                        ("result", "ok"),
                    ],
                ),
            ),
            (base.with_stat("count"), base.with_tag("statistic", "count")),
        ] {
            assert_ne!(derived.derived, Derived::default());
            assert_eq!(stored.derived, Derived::default());
            assert_eq!(derived, stored);
            assert_eq!(stored, derived);
            assert_eq!(h(&derived), h(&stored));
            assert_eq!(derived.hash_value(), stored.hash_value());
            assert_eq!(derived.cmp(&stored), Ordering::Equal);
            assert_eq!(derived.to_string(), stored.to_string());
            assert_eq!(derived.tags().len(), stored.tag_count());
            assert_eq!(derived.tag_count(), stored.tag_count());
            assert_eq!(
                derived.tags().collect::<Vec<_>>(),
                stored.tags().collect::<Vec<_>>()
            );
            for (k, v) in stored.tags() {
                assert_eq!(derived.tag(k), Some(v));
            }
            // The registry's form stores them; it is still the same id.
            let kept = derived.stored();
            assert_eq!(kept.derived, Derived::default());
            assert_eq!(kept.data.slice, stored.data.slice);
            assert_eq!(kept.data.header.header, stored.data.header.header);
            // A derived id shares the allocation: no copy of the strings.
            assert_eq!(derived.data.ptr(), base.data.ptr());
        }
        let bucket = base.with_bucket(BucketPrefix::Timer, 7);
        let mut tags = bucket.tags();
        assert_eq!(tags.len(), 5);
        assert_eq!(tags.by_ref().count(), 5);
        assert_eq!((tags.len(), tags.next(), tags.next()), (0, None, None));
        assert_eq!(
            base.with_bucket(BucketPrefix::Timer, 7).to_string(),
            "rpc.latency:peer=b,percentile=T0007,result=ok,statistic=percentile,zone=a"
        );
        // Other statistics, other buckets, other bases: not equal.
        let count = base.with_stat_of(Stat::Count);
        assert_ne!(count, base.with_stat_of(Stat::Max));
        assert_ne!(count, base);
        assert_ne!(
            base.with_bucket(BucketPrefix::Timer, 1),
            base.with_bucket(BucketPrefix::Timer, 2)
        );
        assert_ne!(
            base.with_bucket(BucketPrefix::Timer, 1),
            base.with_bucket(BucketPrefix::Summary, 1)
        );
        assert_ne!(
            count,
            Id::new("rpc.latency", &[("statistic", "count")]).with_stat_of(Stat::Count)
        );
        assert_ne!(h(&count), h(&base.with_stat_of(Stat::Max)));
    }

    #[test]
    fn statistics_stored_in_the_id_are_kept_or_replaced() {
        // A statistic the caller stored: single-statistic meters keep it, the others replace it.
        let own = Id::new("q", &[("statistic", "gauge"), ("z", "1")]);
        assert_eq!(
            own.with_default_stat_of(Stat::Count).tag("statistic"),
            Some("gauge")
        );
        let replaced = own.with_stat_of(Stat::Max);
        assert_eq!(replaced.to_string(), "q:statistic=max,z=1");
        assert_eq!(replaced.tag_count(), 2);
        // The same for a derived statistic, and an unknown one is stored.
        let derived = Id::new("q", &[]).with_stat_of(Stat::Count);
        assert_eq!(
            derived.with_default_stat("max").tag("statistic"),
            Some("count")
        );
        assert_eq!(derived.with_stat("max").to_string(), "q:statistic=max");
        let unknown = derived.with_stat("p99");
        assert_eq!(unknown.derived, Derived::default());
        assert_eq!(unknown.to_string(), "q:statistic=p99");
        // A stored percentile tag: the bucket id is stored too, still well formed.
        let pct = Id::new("q", &[("percentile", "mine")]).with_bucket(BucketPrefix::Timer, 3);
        assert_eq!(pct.to_string(), "q:percentile=T0003,statistic=percentile");
        // Adding tags to a derived id keeps its derived ones.
        assert_eq!(
            derived.with_tag("a", "b").to_string(),
            "q:a=b,statistic=count"
        );
    }

    #[test]
    fn every_statistic_and_bucket_tag_round_trips() {
        for stat in Stat::ALL {
            assert_eq!(Stat::from_name(stat.name()), Some(stat));
            assert_eq!(stat.op(), Op::from_statistic(Some(stat.name())));
            let id = Id::new("m", &[("a", "1")]).with_stat_of(stat);
            assert_eq!(id.tag("statistic"), Some(stat.name()));
        }
        for (prefix, letter) in [(BucketPrefix::Timer, 'T'), (BucketPrefix::Summary, 'D')] {
            for i in 0..BUCKETS {
                let id = Id::new("m", &[]).with_bucket(prefix, i);
                assert_eq!(
                    id.tag("percentile"),
                    Some(format!("{letter}{i:04X}").as_str())
                );
            }
        }
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
