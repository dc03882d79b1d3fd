//! Atomic building blocks shared by the meters: an `f64` cell and an ordered-bits max.
//! (Multi-field meters keep their intervals consistent with the striped cells of
//! [`super::stats`]; counters sum into the striped [`super::adder::Adder`].)

use std::sync::atomic::{AtomicU64, Ordering};

/// An `f64` that can be set, read and (for the `metrics` facade's gauges) added to from many
/// threads (compare-and-swap on its bits).
#[derive(Debug, Default)]
pub(crate) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(crate) const fn zero() -> AtomicF64 {
        AtomicF64(AtomicU64::new(0)) // 0u64 is +0.0
    }

    /// Adds `v` (the facade gauge's `increment`/`decrement`; counters use the striped
    /// `Adder` instead).
    #[cfg(feature = "metrics-rs")]
    #[inline]
    pub(crate) fn add(&self, v: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(cur) + v).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    #[inline]
    pub(crate) fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed)
    }
}

/// Largest `f64` seen since the last `take`, with one `fetch_max` per update.
///
/// Values are mapped to `u64`s that sort like the floats; 0 means "nothing recorded" (it
/// sorts below every mapped value). NaN is never stored.
#[derive(Debug, Default)]
pub(crate) struct AtomicMaxF64(AtomicU64);

const SIGN: u64 = 1 << 63;

#[inline]
pub(crate) fn to_ordered(v: f64) -> u64 {
    let b = v.to_bits();
    if b & SIGN != 0 {
        !b
    } else {
        b | SIGN
    }
}

#[inline]
pub(crate) fn from_ordered(o: u64) -> f64 {
    f64::from_bits(if o & SIGN != 0 { o & !SIGN } else { !o })
}

impl AtomicMaxF64 {
    #[inline]
    pub(crate) fn update(&self, v: f64) {
        if !v.is_nan() {
            self.0.fetch_max(to_ordered(v), Ordering::Relaxed);
        }
    }

    /// The max so far, NaN when nothing was recorded.
    pub(crate) fn get(&self) -> f64 {
        match self.0.load(Ordering::Relaxed) {
            0 => f64::NAN,
            o => from_ordered(o),
        }
    }

    /// The max since the last take (NaN when nothing was recorded), resetting it.
    pub(crate) fn take(&self) -> f64 {
        match self.0.swap(0, Ordering::Relaxed) {
            0 => f64::NAN,
            o => from_ordered(o),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_mapping_sorts_like_floats() {
        let vals = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -0.0,
            0.0,
            1e-300,
            1.0,
            2.5,
            f64::MAX,
            f64::INFINITY,
        ];
        for w in vals.windows(2) {
            assert!(to_ordered(w[0]) <= to_ordered(w[1]), "{w:?}");
            assert!(to_ordered(w[0]) > 0);
        }
        for v in vals {
            assert_eq!(from_ordered(to_ordered(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn max_ignores_nan_and_resets() {
        let m = AtomicMaxF64::default();
        assert!(m.take().is_nan());
        m.update(f64::NAN);
        assert!(m.get().is_nan());
        m.update(-3.0);
        m.update(-5.0);
        assert_eq!(m.get(), -3.0);
        assert_eq!(m.take(), -3.0);
        assert!(m.take().is_nan());
    }

    #[cfg(feature = "metrics-rs")]
    #[test]
    fn f64_add() {
        let a = AtomicF64::zero();
        a.add(1.5);
        a.add(-2.0);
        assert_eq!(a.load(), -0.5);
        a.store(3.0);
        assert_eq!(a.load(), 3.0);
    }
}
