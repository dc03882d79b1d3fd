//! The percentile bucket layout against the reference client and Spectator's algorithm.

use proptest::prelude::*;
use spectator::percentile_buckets::{get, index_of, LENGTH};

#[derive(serde::Deserialize)]
struct Recorded {
    bucket_values: Vec<u64>,
    index_of: Vec<(u64, usize)>,
}

fn recorded() -> Recorded {
    serde_json::from_str(include_str!("data/percentile_buckets_py.json")).unwrap()
}

#[test]
fn bucket_values_match_reference_client() {
    let r = recorded();
    assert_eq!(r.bucket_values.len(), LENGTH);
    for (i, v) in r.bucket_values.iter().enumerate() {
        assert_eq!(get(i), Some(*v), "bucket {i}");
    }
    assert_eq!(get(LENGTH), None);
}

#[test]
fn index_of_matches_reference_client() {
    for (v, i) in recorded().index_of {
        assert_eq!(index_of(v), i, "index_of({v})");
    }
}

/// Spectator's `indexOf`, written out again with 128-bit integers so no step can overflow.
fn reference_index_of(v: u64) -> usize {
    let v = v.min(i64::MAX as u64) as i128;
    if v <= 0 {
        return 0;
    }
    if v <= 4 {
        return v as usize;
    }
    // Position of each power of 4's first bucket, from the bucket values themselves.
    let first = |p: i128| (0..LENGTH).find(|&i| get(i).unwrap() as i128 == p).unwrap();
    let mut shift = 127 - v.leading_zeros() as i128;
    let mut base = (v >> shift) << shift;
    if shift % 2 != 0 {
        shift -= 1;
        base >>= 1;
    }
    let offset = (v - base) / (base / 3);
    let start = if shift == 62 { LENGTH - 1 } else { first(base) };
    (offset as usize + start + 1).min(LENGTH - 1)
}

proptest! {
    #[test]
    fn index_of_follows_spectator_algorithm(v in any::<u64>()) {
        prop_assert_eq!(index_of(v), reference_index_of(v));
    }

    #[test]
    fn index_of_is_monotonic(a in any::<u64>(), b in any::<u64>()) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(index_of(lo) <= index_of(hi));
    }

    #[test]
    fn values_fall_in_a_bucket_with_upper_bound_near_them(v in 1u64..(1u64 << 61)) {
        // Relative width of a bucket is at most about 1/3 (past 2^61 the layout jumps
        // straight to the last bucket, i64::MAX).
        let i = index_of(v);
        let upper = get(i).unwrap() as f64;
        prop_assert!(upper >= v as f64 * 0.99 || i == LENGTH - 1);
        prop_assert!(upper <= v as f64 * 1.67 + 2.0, "{} -> bucket {} ({})", v, i, upper);
    }
}
