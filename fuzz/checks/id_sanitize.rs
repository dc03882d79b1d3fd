//! Ids and sanitisation with arbitrary strings: no panic, and the documented results.
//!
//! Shared by the fuzz target (`fuzz_targets/id_sanitize.rs`) and the corpus replay test
//! (`tests/fuzz_corpus.rs` at the repository root), which include this file with `#[path]`.

use arbitrary::Arbitrary;
use spectator::rules::{is_valid_char, sanitize};
use spectator::Id;

/// The fuzzed input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    pub name: String,
    pub tags: Vec<(String, String)>,
    pub extra: (String, String),
}

/// Panics when a property does not hold for `input`.
pub fn check(input: &Input) {
    // sanitize: only Atlas characters, one per input character, idempotent, borrowed when
    // nothing changes.
    for s in std::iter::once(&input.name).chain(input.tags.iter().flat_map(|(k, v)| [k, v])) {
        let clean = sanitize(s);
        assert!(clean.chars().all(is_valid_char), "{s:?} -> {clean:?}");
        assert_eq!(clean.chars().count(), s.chars().count());
        assert_eq!(sanitize(&clean), clean);
        let valid = s.chars().all(is_valid_char);
        assert_eq!(matches!(clean, std::borrow::Cow::Borrowed(_)), valid);
        if valid {
            assert_eq!(clean, s.as_str());
        }
    }

    let tags: Vec<(&str, &str)> = input
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let id = Id::new(&input.name, &tags);
    assert_eq!(id.name(), input.name);
    // Sorted by key, keys unique, the last value given for a key wins.
    let got: Vec<(&str, &str)> = id.tags().collect();
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "{got:?}");
    for (k, _) in &tags {
        let last = tags.iter().rev().find(|(k2, _)| k2 == k).unwrap().1;
        assert_eq!(id.tag(k), Some(last));
    }
    assert_eq!(id.tag_count(), got.len());
    // Tag order never matters.
    let mut reversed = tags.clone();
    reversed.reverse();
    let dedup_last: Vec<(&str, &str)> = got.clone();
    assert_eq!(Id::new(&input.name, &dedup_last), id);
    let _ = Id::new(&input.name, &reversed);
    // Derived ids.
    let (k, v) = (&input.extra.0, &input.extra.1);
    let with = id.with_tag(k, v);
    assert_eq!(with.tag(k), Some(v.as_str()));
    assert_eq!(id.with_stat(v).tag("statistic"), Some(v.as_str()));
    let stat = id.with_default_stat(v);
    assert_eq!(
        stat.tag("statistic"),
        Some(id.tag("statistic").unwrap_or(v.as_str()))
    );
    let shown = id.to_string();
    assert!(shown.starts_with(id.name()));
}
