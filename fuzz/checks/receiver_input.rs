//! What the local receiver parses from the network: an Atlas publish body (`decode_payload`,
//! then `check_measurement`) and a spectatord datagram (`parse_bytes` per line, then the
//! per-step aggregation). The HTTP request head itself is parsed by hyper. No input may panic,
//! and what parses must be self-consistent.
//!
//! Shared by the fuzz target (`fuzz_targets/receiver_input.rs`) and the corpus replay test
//! (`tests/fuzz_corpus.rs` at the repository root), which include this file with `#[path]`.

use arbitrary::Arbitrary;
use spectator::receiver::spectatord::{parse_bytes, LineAggregator};
use spectator::receiver::{check_measurement, decode_payload};
use spectator::rules::is_valid_char;

/// The fuzzed input: the same bytes read both ways.
#[derive(Arbitrary, Debug)]
pub struct Input {
    pub bytes: Vec<u8>,
}

/// Panics when a property does not hold for `input`.
pub fn check(input: &Input) {
    let bytes = &input.bytes;

    // Atlas payload: decoded measurements carry a name and an op the verdict can judge.
    if let Ok(ms) = decode_payload(bytes) {
        for m in &ms {
            let verdict = check_measurement(m);
            if verdict.accepted(true) {
                assert!(!m.name().is_empty(), "{m:?} accepted without a name");
                assert!(m.op == 0 || m.op == 10, "{m:?} accepted with op {}", m.op);
            }
        }
    }

    // spectatord datagram: every parsed line has a sanitised name and tags, and the
    // aggregator counts each line once, as parsed or as an error.
    let lines = bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    for line in bytes.split(|&b| b == b'\n') {
        if let Ok(p) = parse_bytes(line) {
            assert!(p.name.chars().all(is_valid_char), "{p:?}");
            for (k, v) in &p.tags {
                assert!(
                    k.chars().all(is_valid_char) && v.chars().all(is_valid_char),
                    "{p:?}"
                );
            }
        }
    }
    let mut agg = LineAggregator::default();
    let errors = agg.ingest_datagram(bytes);
    assert_eq!(errors.len() as u64, agg.parse_errors());
    assert!(agg.parsed_lines() + agg.parse_errors() <= lines as u64 + 1);
    for m in agg.take_step() {
        assert!(m.op == 0 || m.op == 10, "{m:?}");
        assert!(!m.value.is_nan(), "{m:?}");
    }
}
