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
    inner: Arc<IdInner>,
}

struct IdInner {
    name: Box<str>,
    /// Sorted by key, keys unique.
    tags: Box<[(Box<str>, Box<str>)]>,
    /// Order-independent hash of name and tags, shared with [`IdRef`].
    hash: u64,
}

impl Id {
    /// An id with the given name and tags. Tags may come in any order; a repeated key keeps
    /// its last value.
    pub fn new(name: &str, tags: &[(&str, &str)]) -> Id {
        Id::from_parts(
            name.into(),
            tags.iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    fn from_parts(name: Box<str>, mut tags: Vec<(Box<str>, Box<str>)>) -> Id {
        // Stable sort keeps the given order among equal keys, so the last one wins below.
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        let mut unique: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(tags.len());
        for (k, v) in tags {
            match unique.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => unique.push((k, v)),
            }
        }
        let hash = id_hash(&name, unique.iter().map(|(k, v)| (&**k, &**v)));
        Id {
            inner: Arc::new(IdInner {
                name,
                tags: unique.into_boxed_slice(),
                hash,
            }),
        }
    }

    /// The metric name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The tags, sorted by key.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.inner.tags.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The value of tag `key`, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.inner
            .tags
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.inner.tags[i].1)
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
        let mut all: Vec<(Box<str>, Box<str>)> = self.inner.tags.to_vec();
        all.extend(tags.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        Id::from_parts(self.inner.name.clone(), all)
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
        self.inner.tags.len()
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Id) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.hash == other.inner.hash
                && self.inner.name == other.inner.name
                && self.inner.tags == other.inner.tags)
    }
}

impl Eq for Id {}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.inner.hash);
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
    hash: u64,
}

impl<'a> IdRef<'a> {
    /// `None` when `tags` repeats a key: such lookups take the allocating path.
    pub(crate) fn new(name: &'a str, tags: &'a [(&'a str, &'a str)]) -> Option<IdRef<'a>> {
        for (i, (k, _)) in tags.iter().enumerate() {
            if tags[..i].iter().any(|(k2, _)| k2 == k) {
                return None;
            }
        }
        Some(IdRef {
            name,
            tags,
            hash: id_hash(name, tags.iter().copied()),
        })
    }
}

impl Hash for IdRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl hashbrown::Equivalent<Id> for IdRef<'_> {
    fn equivalent(&self, id: &Id) -> bool {
        let stored = &id.inner.tags;
        self.hash == id.inner.hash
            && short_eq(self.name, &id.inner.name)
            && self.tags.len() == stored.len()
            && self.tags.iter().enumerate().all(|(i, (k, v))| {
                // Callers usually pass tags in the same order each time, often sorted: try
                // the same position first, then look through the (few) others.
                let same = |(sk, sv): &(Box<str>, Box<str>)| short_eq(k, sk) && short_eq(v, sv);
                stored.get(i).is_some_and(same) || stored.iter().any(same)
            })
    }
}

/// String equality for the short strings of names and tags, inlined: a call into the C
/// library's `memcmp` per comparison cost more than the comparison itself.
#[inline]
fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
        if word(x) != word(y) {
            return false;
        }
    }
    ca.remainder()
        .iter()
        .zip(cb.remainder())
        .all(|(x, y)| x == y)
}

fn str_hash(s: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(s.as_bytes());
    h.write_u8(0xff);
    h.finish()
}

/// A final avalanche so that the (weak) Fx hashes spread over all bits.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Hash of a name and a set of tags that does not depend on the tags' order: each pair is
/// hashed on its own and the pair hashes are summed.
fn id_hash<'a>(name: &str, tags: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut sum = 0u64;
    for (k, v) in tags {
        sum = sum.wrapping_add(mix(str_hash(k).rotate_left(17) ^ str_hash(v)));
    }
    mix(str_hash(name) ^ sum.rotate_left(29))
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
