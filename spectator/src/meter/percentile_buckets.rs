//! Spectator's percentile bucket layout: 276 buckets covering all of `u64` up to `i64::MAX`
//! with about 1/3 relative error, so that histograms from every Spectator client merge in Atlas.
//!
//! Buckets are 1, 2, 3, 4, then for each power of 4 (`4^k`), steps of `4^k / 3` up to the
//! next power of 4, and finally `i64::MAX`. [`index_of`] uses exact integer arithmetic.

use std::sync::OnceLock;

/// Number of buckets.
pub const LENGTH: usize = 276;

struct Layout {
    values: [u64; LENGTH],
    /// `power_of_4_index[k]` is the position of `4^k`'s first bucket (what Spectator's
    /// `indexOf` reads; [`index_of`] computes it, and the tests check the two agree).
    #[cfg_attr(not(test), allow(dead_code))]
    power_of_4_index: [usize; 32],
}

fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let mut values = Vec::with_capacity(LENGTH);
        values.extend([1u64, 2, 3]);
        let mut power_of_4_index = [0usize; 32];
        let mut exp = 2;
        while exp < 64 {
            // Java's `long` arithmetic: for 4^31, `current << 2` overflows to a negative
            // `next`, so that power adds no steps and the last bucket follows directly.
            let mut current = 1i64 << exp;
            let delta = current / 3;
            let next = (current << 2).wrapping_sub(delta);
            power_of_4_index[exp / 2] = values.len();
            while current < next {
                values.push(current as u64);
                current += delta;
            }
            exp += 2;
        }
        values.push(i64::MAX as u64);
        let values: [u64; LENGTH] = values.try_into().unwrap_or_else(|v: Vec<u64>| {
            // The layout is fixed; a different length is a bug caught by the unit tests.
            let mut a = [u64::MAX; LENGTH];
            for (d, s) in a.iter_mut().zip(v) {
                *d = s;
            }
            a
        });
        Layout {
            values,
            power_of_4_index,
        }
    })
}

/// The upper bound of bucket `i` (`None` past the last bucket).
///
/// ```
/// use spectator::percentile_buckets as pb;
/// assert_eq!(pb::get(0), Some(1));
/// assert_eq!(pb::get(pb::LENGTH - 1), Some(i64::MAX as u64));
/// ```
pub fn get(i: usize) -> Option<u64> {
    layout().values.get(i).copied()
}

/// The index of the bucket for `v`; values past `i64::MAX` go to the last bucket.
///
/// ```
/// use spectator::percentile_buckets::index_of;
/// assert_eq!(index_of(0), 0);
/// assert_eq!(index_of(5), 5);
/// assert_eq!(index_of(100), 0x19);
/// ```
#[inline]
pub fn index_of(v: u64) -> usize {
    // Spectator's definition, for v > 4: with `base` the power of 4 at or below v and
    // `delta = base / 3`, the index is `(v - base) / delta` plus the position of `base`'s first
    // bucket, plus one, capped at the last bucket. This computes the same without a division
    // and without the layout (a timer takes this on every record):
    // - below 16 (base 1 or 4, delta 1) it is v itself;
    // - from 4^31 = 2^62 on it is the last bucket;
    // - for base = 4^k, k in 2..=30: 4^k is one more than a multiple of 3, so delta is
    //   (4^k - 1) / 3, and (v - base) / delta = y / (4^k - 1) with y = 3 (v - base) < 9 * 4^k.
    //   Writing y = q 4^k + r = q (4^k - 1) + (q + r) with q <= 8 and r < 4^k, that is q, plus
    //   one when q + r >= 4^k - 1 (q + r < 2 (4^k - 1) as 4^k >= 16);
    // - every power of 4 from 4^2 on has 9 buckets, so base's first bucket is at 9k - 4.
    if v < 16 {
        return v as usize;
    }
    if v >= 1 << 62 {
        return LENGTH - 1;
    }
    let k = (63 - v.leading_zeros()) / 2;
    let base = 1u64 << (2 * k);
    let y = 3 * (v - base);
    let q = y >> (2 * k);
    let r = y & (base - 1);
    let offset = q + u64::from(q + r >= base - 1);
    let pos = offset as usize + 9 * k as usize - 4;
    (pos + 1).min(LENGTH - 1)
}

/// The `p`-th percentile (0..=100) of a histogram of bucket `counts`, interpolating linearly
/// inside the bucket that holds it, as Spectator does. NaN for an empty histogram or a `p`
/// that is not a number; `p` outside 0..=100 is clamped.
pub fn percentile(counts: &[u64; LENGTH], p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    let p = p.clamp(0.0, 100.0);
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let l = layout();
    let (mut prev, mut prev_p, mut prev_b) = (0u64, 0.0f64, 0.0f64);
    for (i, &c) in counts.iter().enumerate() {
        let next = prev + c;
        let next_p = 100.0 * next as f64 / total as f64;
        let next_b = l.values[i] as f64;
        if next_p >= p && c > 0 {
            let f = (p - prev_p) / (next_p - prev_p);
            return f * (next_b - prev_b) + prev_b;
        }
        prev = next;
        prev_p = next_p;
        prev_b = next_b;
    }
    prev_b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_276_buckets_ending_at_i64_max() {
        let l = layout();
        assert_eq!(l.values.len(), LENGTH);
        assert_eq!(
            &l.values[..16],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 21]
        );
        assert_eq!(l.values[LENGTH - 1], i64::MAX as u64);
        assert!(l.values.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(&l.power_of_4_index[..4], &[0, 3, 14, 23]);
        assert_eq!(l.power_of_4_index[31], 275);
    }

    /// Spectator's `indexOf` as written (a division, the layout's table).
    fn reference_index_of(v: u64) -> usize {
        if v == 0 {
            return 0;
        }
        if v <= 4 {
            return v as usize;
        }
        let l = layout();
        let mut shift = 63 - v.leading_zeros() as usize;
        let prev_power_of_2 = (v >> shift) << shift;
        let mut prev_power_of_4 = prev_power_of_2;
        if !shift.is_multiple_of(2) {
            shift -= 1;
            prev_power_of_4 = prev_power_of_2 >> 1;
        }
        let base = prev_power_of_4;
        let delta = base / 3;
        let offset = ((v - base) / delta) as usize;
        let pos = offset + l.power_of_4_index[shift / 2];
        if pos >= LENGTH - 1 {
            LENGTH - 1
        } else {
            pos + 1
        }
    }

    #[test]
    fn index_matches_the_reference_definition() {
        let l = layout();
        for k in 2..32 {
            assert_eq!(l.power_of_4_index[k], 9 * k - 4, "{k}");
        }
        let mut values: Vec<u64> = (0..100_000).collect();
        // Around every bucket boundary and every power of 2, where an off-by-one would show.
        for &b in &l.values {
            values.extend((b.saturating_sub(3)..=b.saturating_add(3)).take(7));
        }
        for s in 0..64 {
            let p = 1u64 << s;
            values.extend((p.saturating_sub(3)..=p.saturating_add(3)).take(7));
        }
        values.extend([u64::MAX - 1, u64::MAX, i64::MAX as u64 + 1]);
        // And a spread of others (a fixed xorshift sequence), scaled over every magnitude.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            assert_eq!(index_of(v), reference_index_of(v), "{v}");
        }
    }

    #[test]
    fn index_matches_recorded_vectors() {
        // From the reference client's percentile vectors.
        for (v, i) in [(0, 0), (1, 1), (4, 4), (5, 5), (100, 0x19), (1000, 0x29)] {
            assert_eq!(index_of(v), i, "{v}");
        }
        assert_eq!(index_of(123_456), 0x47);
        assert_eq!(index_of(1_000_000_000_000), 0xAF);
        assert_eq!(index_of(10_000_000), 0x64); // 10 ms in ns
        assert_eq!(index_of(60_000_000_000), 0x9D); // 60 s in ns
        assert_eq!(index_of(u64::MAX), LENGTH - 1);
        assert_eq!(index_of(i64::MAX as u64), LENGTH - 1);
    }

    #[test]
    fn percentile_interpolates() {
        let mut counts = [0u64; LENGTH];
        counts[index_of(50)] = 100;
        let p50 = percentile(&counts, 50.0);
        let lo = get(index_of(50) - 1).unwrap() as f64;
        let hi = get(index_of(50)).unwrap() as f64;
        assert!(p50 > lo && p50 <= hi, "{p50}");
        assert!(percentile(&[0; LENGTH], 50.0).is_nan());
        assert!(percentile(&counts, f64::NAN).is_nan());
        assert_eq!(percentile(&counts, 1000.0), hi);
    }
}
