//! [`SystemClock::interval_time`](super::SystemClock) on x86_64 Linux: the processor's
//! time-stamp counter (TSC), scaled to nanoseconds on `CLOCK_MONOTONIC`'s time line.
//!
//! # Why
//!
//! Even through the vDSO, `clock_gettime(CLOCK_MONOTONIC)` costs ~40 ns on a KVM guest, and
//! most of that is not the arithmetic but the ordered counter read the kernel does (`rdtscp`,
//! or `lfence; rdtsc`: the processor waits for every earlier instruction before reading). A
//! timer reads the time twice per record. A plain `rdtsc` lets the processor read the counter
//! while earlier instructions are still in flight: two readings around a call cost about half
//! of two `CLOCK_MONOTONIC` readings (BENCHMARKS.md, "The clock").
//!
//! # When
//!
//! Only when the processor reports an invariant TSC (CPUID leaf 0x8000_0007, EDX bit 8: one
//! constant rate in every power state) and `rdtscp` (used to calibrate), and the kernel's
//! current clocksource is `tsc`: the kernel then checked at boot that the counters of all
//! CPUs are in step and trusts them for its own time keeping. Anywhere else readings are
//! `CLOCK_MONOTONIC`, and so are they while the counter is behind the calibration's anchor
//! (it restarted when the machine resumed from sleep).
//!
//! # Calibration, without waiting
//!
//! The first reading takes an anchor: a TSC value and the `CLOCK_MONOTONIC` time right after
//! it. Readings are `CLOCK_MONOTONIC` until [`CALIBRATION_NS`] have passed on it; the first
//! reading after that takes a second pair, and from then on a reading is the anchor's time
//! plus the ticks since the anchor at the rate between the two pairs. At the second pair that
//! is that pair's time, so readings are continuous where the source changes. (An anchor older
//! than [`STALE_NS`] when the window ends is replaced rather than used: a machine that slept
//! in between would give a wrong rate.) A pair is read several times and the one read in the
//! shortest span of ticks kept, so the rate is off by about 50 ns per calibration window
//! (0.5 ppm); `CLOCK_MONOTONIC`, which NTP slews, and the TSC also part at the slew rate.
//! Measured over 10 s after calibration on a KVM guest: 2.2 to 3.0 µs apart (the clock's
//! ignored test `interval_time_drift_over_10_s`). Durations only see this as a relative error
//! of parts per million.
//!
//! # Ordering
//!
//! Not waiting for earlier instructions is what makes the read cheap, and what makes it
//! weaker than `CLOCK_MONOTONIC`: a reading can be taken up to the processor's reordering
//! window earlier than the program order puts it. Readings of one thread have been seen in
//! order; across threads, a reading taken after loading a value another thread stored after
//! its own reading was seen up to ~3 µs behind it, when the load waited for a cache line that
//! several cores were writing (the clock's tests bound it). Hence the caveats on
//! [`Clock::interval_time`](super::Clock::interval_time).

use std::arch::x86_64::{__cpuid, __rdtscp, _rdtsc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};

/// Least `CLOCK_MONOTONIC` time between the two pairs the rate is taken from.
pub(super) const CALIBRATION_NS: u64 = 100_000_000;

/// An anchor older than this when the calibration window ends is replaced by a new one.
const STALE_NS: u64 = 10_000_000_000;

/// Bounds of a plausible TSC rate, in ticks per second (a wrong one means no TSC).
const MIN_HZ: u128 = 100_000_000;
const MAX_HZ: u128 = 20_000_000_000;

/// Readings once calibrated: `mono0` plus the ticks since `tsc0` times `mult / 2^32` ns.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scale {
    tsc0: u64,
    mono0: u64,
    /// Nanoseconds per tick, fixed point with 32 fractional bits.
    mult: u64,
}

impl Scale {
    /// The time at counter value `tsc`; never less than `mono0`, never decreasing in `tsc`.
    #[inline]
    fn at(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.tsc0);
        let ns = (u128::from(ticks) * u128::from(self.mult)) >> 32;
        self.mono0
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// A counter value and the `CLOCK_MONOTONIC` time read right after it.
#[derive(Clone, Copy, Debug)]
struct Pair {
    tsc: u64,
    mono: u64,
}

/// A TSC clock's state. The process has one, [`TSC`]; tests make their own to calibrate anew.
pub(super) struct Tsc {
    /// `None` until calibrated or found unusable; then `Some(None)` (readings are
    /// `CLOCK_MONOTONIC` for good) or the scale.
    scale: OnceLock<Option<Scale>>,
    /// The `CLOCK_MONOTONIC` time from which the next step of calibration is due (0: take
    /// the anchor), so that a reading in the window costs one relaxed load besides the clock.
    due: AtomicU64,
    /// The anchor, once taken. Locked only for a step of calibration (a few times in all).
    anchor: Mutex<Option<Pair>>,
}

/// The process's TSC clock.
pub(super) static TSC: Tsc = Tsc::new();

impl Tsc {
    pub(super) const fn new() -> Tsc {
        Tsc {
            scale: OnceLock::new(),
            due: AtomicU64::new(0),
            anchor: Mutex::new(None),
        }
    }

    /// The time for an interval: see the module docs.
    #[inline]
    pub(super) fn interval_time(&self) -> u64 {
        match self.scale.get() {
            Some(Some(scale)) => {
                // SAFETY: `rdtsc` exists on every x86_64 processor and has no preconditions.
                let tsc = unsafe { _rdtsc() };
                if tsc >= scale.tsc0 {
                    scale.at(tsc)
                } else {
                    // A counter behind the anchor restarted (a machine resumed from sleep):
                    // its ticks mean nothing on the scale, the kernel's clock still does.
                    super::clock_monotonic()
                }
            }
            Some(None) => super::clock_monotonic(),
            None => self.uncalibrated(),
        }
    }

    /// A reading before calibration ended: `CLOCK_MONOTONIC`, and a step of calibration if
    /// due.
    #[cold]
    #[inline(never)]
    fn uncalibrated(&self) -> u64 {
        let now = super::clock_monotonic();
        if now >= self.due.load(Ordering::Relaxed) {
            self.calibrate();
        }
        now
    }

    /// Takes the anchor, or the second pair and with it the scale. A thread that finds
    /// another one at it leaves it to that one.
    fn calibrate(&self) {
        let mut anchor = match self.anchor.try_lock() {
            Ok(guard) => guard,
            // Nothing panics while holding it; were it poisoned, the anchor is still whole.
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if self.scale.get().is_some() {
            return;
        }
        let Some(first) = *anchor else {
            if !usable() {
                let _ = self.scale.set(None);
                return;
            }
            let first = pair();
            *anchor = Some(first);
            self.due
                .store(first.mono.saturating_add(CALIBRATION_NS), Ordering::Relaxed);
            return;
        };
        let second = pair();
        let elapsed = second.mono.saturating_sub(first.mono);
        if elapsed < CALIBRATION_NS {
            return;
        }
        if elapsed > STALE_NS {
            *anchor = Some(second);
            self.due.store(
                second.mono.saturating_add(CALIBRATION_NS),
                Ordering::Relaxed,
            );
            return;
        }
        let _ = self.scale.set(scale(first, second));
    }

    /// The scale, once calibrated: `None` while calibrating or where the TSC is not used.
    #[cfg(test)]
    pub(super) fn calibrated(&self) -> Option<Scale> {
        self.scale.get().copied().flatten()
    }

    /// Whether calibration has ended, with or without a scale.
    #[cfg(test)]
    pub(super) fn settled(&self) -> bool {
        self.scale.get().is_some()
    }
}

/// The scale through `first` and `second`, if their rate is a plausible TSC's.
fn scale(first: Pair, second: Pair) -> Option<Scale> {
    let ticks = u128::from(second.tsc.checked_sub(first.tsc)?);
    let ns = u128::from(second.mono.checked_sub(first.mono)?);
    if ns == 0 || ticks * 1_000_000_000 < MIN_HZ * ns || ticks * 1_000_000_000 > MAX_HZ * ns {
        return None;
    }
    let mult = u64::try_from((ns << 32) / ticks).ok()?;
    Some(Scale {
        tsc0: first.tsc,
        mono0: first.mono,
        mult,
    })
}

/// A counter value and the time right after it, the closest of a few tries (a try that an
/// interrupt or a preemption splits is longer).
fn pair() -> Pair {
    let mut best = Pair { tsc: 0, mono: 0 };
    let mut best_span = u64::MAX;
    for _ in 0..5 {
        let mut aux = 0u32;
        // SAFETY: `rdtscp` is present (checked by `usable`) and only writes `aux`.
        let before = unsafe { __rdtscp(&mut aux) };
        let mono = super::clock_monotonic();
        // SAFETY: as above.
        let after = unsafe { __rdtscp(&mut aux) };
        let span = after.wrapping_sub(before);
        if span < best_span {
            best_span = span;
            best = Pair { tsc: before, mono };
        }
    }
    best
}

/// Whether the TSC is a sound clock here (see the module docs).
#[allow(unused_unsafe)] // `__cpuid` is an unsafe fn before Rust 1.87, a safe one since
fn usable() -> bool {
    // SAFETY: `cpuid` exists on every x86_64 processor; leaves past the highest one
    // reported are not asked for.
    let max_extended = unsafe { __cpuid(0x8000_0000) }.eax;
    if max_extended < 0x8000_0007 {
        return false;
    }
    // SAFETY: as above.
    let rdtscp = unsafe { __cpuid(0x8000_0001) }.edx & (1 << 27) != 0;
    // SAFETY: as above.
    let invariant = unsafe { __cpuid(0x8000_0007) }.edx & (1 << 8) != 0;
    rdtscp && invariant && kernel_uses_tsc()
}

/// Whether the kernel keeps its own time with the TSC.
fn kernel_uses_tsc() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .is_ok_and(|s| s.trim() == "tsc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_maps_the_pairs_and_rejects_implausible_rates() {
        let a = Pair {
            tsc: 1_000,
            mono: 5_000_000,
        };
        // 3 GHz over 100 ms.
        let b = Pair {
            tsc: 1_000 + 300_000_000,
            mono: 105_000_000,
        };
        let s = scale(a, b).expect("a plausible rate");
        assert_eq!(s.at(a.tsc), a.mono);
        // Rounded down by at most a ns.
        assert!(b.mono - s.at(b.tsc) <= 1, "{}", s.at(b.tsc));
        // A counter behind the anchor (another CPU's, a hair behind) reads as the anchor.
        assert_eq!(s.at(0), a.mono);
        // 10 MHz and 100 GHz are no TSC; nor is a counter that went backwards.
        let slow = Pair {
            tsc: 1_000 + 1_000_000,
            mono: b.mono,
        };
        assert!(scale(a, slow).is_none());
        let fast = Pair {
            tsc: 1_000 + 10_000_000_000,
            mono: b.mono,
        };
        assert!(scale(a, fast).is_none());
        assert!(scale(b, a).is_none());
        assert!(scale(a, a).is_none());
    }

    #[test]
    fn readings_never_decrease_in_the_counter() {
        let s = Scale {
            tsc0: 10,
            mono0: 7,
            mult: (1u64 << 32) / 3, // 3 ticks per ns
        };
        let mut last = 0;
        for tsc in (0..10_000).chain([u64::MAX / 2, u64::MAX - 1, u64::MAX]) {
            let t = s.at(tsc);
            assert!(t >= last, "{tsc}: {t} < {last}");
            last = t;
        }
    }
}
