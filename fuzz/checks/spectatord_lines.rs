//! The spectatord line writer (the `memory` output) with arbitrary names, tags, common tags
//! and values: no panic, one line per measurement, and every line parses back as spectatord
//! reads it (`TYPE:NAME,K=V,…:VALUE`) to sanitised names, keys and values, keys sorted and
//! unique; a gauge's line carries its id's sanitised tags and its exact value.
//!
//! Shared by the fuzz target (`fuzz_targets/spectatord_lines.rs`) and the corpus replay test
//! (`tests/fuzz_corpus.rs` at the repository root), which include this file with `#[path]`.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use spectator::rules::{is_valid_char, sanitize};
use spectator::{Id, Registry};

/// Tag pairs as given.
pub type Tags = Vec<(String, String)>;

/// The fuzzed input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    pub common: Vec<(String, String)>,
    /// `(kind, name, tags, value)`: kind picks the meter (counter, gauge, max gauge, summary).
    pub meters: Vec<(u8, String, Tags, f64)>,
}

/// One line split as spectatord's `parse_line` does.
struct Line {
    kind: char,
    name: String,
    tags: Vec<(String, String)>,
    value: f64,
}

fn parse(line: &str) -> Line {
    let (kind, rest) = line
        .split_once(':')
        .unwrap_or_else(|| panic!("no type: {line:?}"));
    let (id, value) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no value: {line:?}"));
    assert!(!id.contains(':'), "{line:?}");
    let mut parts = id.split(',');
    let name = parts.next().unwrap_or_default().to_owned();
    let tags = parts
        .map(|t| {
            let (k, v) = t
                .split_once('=')
                .unwrap_or_else(|| panic!("tag without '=': {line:?}"));
            assert!(!v.contains('='), "{line:?}");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let value = value
        .parse::<f64>()
        .unwrap_or_else(|_| panic!("bad value: {line:?}"));
    let mut kinds = kind.chars();
    let kind = kinds.next().unwrap_or(' ');
    assert!(kinds.next().is_none() && "cgm".contains(kind), "{line:?}");
    Line {
        kind,
        name,
        tags,
        value,
    }
}

/// Panics when a property does not hold for `input`; returns how many gauges were checked
/// exactly.
pub fn check(input: &Input) -> usize {
    let common: Vec<(&str, &str)> = input
        .common
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let registry = Registry::builder()
        .output_location("memory")
        .common_tags(&common)
        .build();
    // Gauges set once, by id: their lines are checked exactly.
    let mut gauges: BTreeMap<String, (Id, Option<f64>)> = BTreeMap::new();
    // Ids of the other meters: a gauge on one of those ids reports nothing.
    let mut others: BTreeSet<Id> = BTreeSet::new();
    for (kind, name, tags, value) in &input.meters {
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let id = Id::new(name, &tags);
        match kind % 4 {
            0 => {
                registry.counter_with_id(&id).add(*value);
                others.insert(id);
            }
            1 => {
                registry.gauge_with_id(&id).set(*value);
                let slot = gauges.entry(id.to_string()).or_insert((id.clone(), None));
                // Set twice, or also another meter kind: not checked exactly.
                slot.1 = if slot.0 == id && slot.1.is_none() {
                    Some(*value)
                } else {
                    Some(f64::NAN)
                };
            }
            2 => {
                registry.max_gauge_with_id(&id).set(*value);
                others.insert(id);
            }
            _ => {
                registry.distribution_summary_with_id(&id).record(*value);
                others.insert(id);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let report = rt.block_on(registry.publish());
    let lines = registry.take_written_lines();
    assert_eq!(report.sent, lines.len(), "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");

    let mut parsed = Vec::with_capacity(lines.len());
    for line in &lines {
        let l = parse(line);
        assert!(l.name.chars().all(is_valid_char), "{line:?}");
        for (k, v) in &l.tags {
            assert!(k.chars().all(is_valid_char), "{line:?}");
            assert!(v.chars().all(is_valid_char), "{line:?}");
            assert_ne!(k, "name", "{line:?}");
        }
        assert!(
            l.tags.windows(2).all(|w| w[0].0 < w[1].0),
            "keys not sorted and unique: {line:?}"
        );
        assert!(
            l.tags.iter().any(|(k, _)| k == "statistic"),
            "no statistic: {line:?}"
        );
        parsed.push(l);
    }

    // Each gauge set once, with plain keys (no sanitising, no `statistic`/`name` of its own,
    // none shadowed by an id of another meter that sanitises alike): one `g` line with its
    // name, its tags and its exact value.
    let mut exact = 0;
    for (id, value) in gauges.values() {
        let Some(value) = *value else { continue };
        let plain = id
            .tags()
            .all(|(k, _)| k.chars().all(is_valid_char) && k != "statistic" && k != "name");
        if !plain || value.is_nan() || others.contains(id) || !id.name().chars().all(is_valid_char)
        {
            continue;
        }
        let name = sanitize(id.name());
        let own: BTreeSet<(String, String)> = id
            .tags()
            .map(|(k, v)| (k.to_owned(), sanitize(v).into_owned()))
            .chain([("statistic".to_owned(), "gauge".to_owned())])
            .collect();
        let matching: Vec<&Line> = parsed
            .iter()
            .filter(|l| {
                l.kind == 'g'
                    && l.name == name
                    && own
                        .iter()
                        .all(|t| l.tags.iter().any(|(k, v)| k == &t.0 && v == &t.1))
            })
            .collect();
        assert!(
            matching.iter().any(|l| l.value == value),
            "gauge {id} = {value}: {lines:?}"
        );
        exact += 1;
    }
    exact
}
