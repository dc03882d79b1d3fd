//! The publish payload with arbitrary names, tags, common tags and values: the output is valid
//! JSON that the aggregator decodes back to the sanitised tags and exact values, and whose
//! measurements break none of the aggregator's character and op rules.
//!
//! Shared by the fuzz target (`fuzz_targets/encode_payload.rs`) and the corpus replay test
//! (`tests/fuzz_corpus.rs` at the repository root), which include this file with `#[path]`.

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use spectator::rules::sanitize;
use spectator::testing::aggregator::{check_measurement, decode_payload};
use spectator::wire::encode_batch;
use spectator::{Id, Measurement};

/// Tag pairs as given.
pub type Tags = Vec<(String, String)>;

/// The fuzzed input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    pub common: Vec<(String, String)>,
    pub measurements: Vec<(String, Tags, f64)>,
}

/// Panics when a property does not hold for `input`.
pub fn check(input: &Input) {
    let batch: Vec<Measurement> = input
        .measurements
        .iter()
        .map(|(name, tags, value)| {
            let tags: Vec<(&str, &str)> =
                tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Measurement::new(Id::new(name, &tags), *value)
        })
        .collect();
    let mut json = Vec::new();
    encode_batch(&input.common, &batch, &mut json);
    serde_json::from_slice::<serde_json::Value>(&json).expect("valid JSON");
    let decoded = decode_payload(&json).expect("the aggregator decodes it");

    let finite: Vec<&Measurement> = batch.iter().filter(|m| m.value.is_finite()).collect();
    assert_eq!(decoded.len(), finite.len());
    for (m, got) in finite.iter().zip(&decoded) {
        // Expected tags: common tags, then the id's (an id's key wins), then the name; all
        // sanitised, a later spelling of the same sanitised key replacing an earlier one.
        let mut want: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in &input.common {
            want.insert(sanitize(k).into_owned(), sanitize(v).into_owned());
        }
        let mut own: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in m.id.tags() {
            own.insert(sanitize(k).into_owned(), sanitize(v).into_owned());
        }
        want.extend(own);
        want.insert("name".into(), sanitize(m.id.name()).into_owned());
        assert_eq!(got.tags, want, "{m:?}");
        assert_eq!(got.value, m.value);
        assert_eq!(got.op, u64::from(m.op.code()));

        let verdict = check_measurement(got);
        let reserved = got.tags.keys().any(|k| k.starts_with("atlas."));
        let user_tags = got
            .tags
            .keys()
            .filter(|k| *k != "name" && !k.starts_with("nf."))
            .count();
        if !reserved && user_tags <= 20 {
            assert!(
                verdict.rejected.is_empty(),
                "{:?} {got:?}",
                verdict.rejected
            );
        }
    }
}
