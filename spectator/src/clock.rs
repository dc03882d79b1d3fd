//! Time sources: wall time for gauge TTLs and publish steps, monotonic time for timers.
//!
//! Every registry owns one [`Clock`]. Production code uses [`SystemClock`]; tests drive a
//! [`ManualClock`] so that TTLs, steps and recorded durations are deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod tsc;

/// A source of wall-clock and monotonic time.
///
/// Implementations must be cheap: timers read the time twice per recorded call (with
/// [`interval_time`](Clock::interval_time)).
///
/// ```
/// use spectator::{Clock, SystemClock};
/// let clock = SystemClock;
/// assert!(clock.wall_time() > 1_600_000_000_000);
/// let a = clock.monotonic_time();
/// assert!(clock.monotonic_time() >= a);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn wall_time(&self) -> u64;
    /// Nanoseconds from an arbitrary, fixed origin; never goes backwards.
    fn monotonic_time(&self) -> u64;

    /// Nanoseconds for timing an interval: the difference of two readings, taken with
    /// `saturating_sub`, is the time between them. Timers, stopwatches, `#[timed]` and the
    /// IPC layers read this. Defaults to [`monotonic_time`](Clock::monotonic_time), so a
    /// [`ManualClock`] drives timers.
    ///
    /// A clock may read this more cheaply than `monotonic_time`, with guarantees that matter
    /// to a point in time but not to a duration of a few µs or more. [`SystemClock`] reads
    /// the processor's time-stamp counter where that is sound (x86_64 Linux with an
    /// invariant TSC that the kernel keeps time with), without making the processor wait
    /// for earlier instructions first. So:
    /// - a reading can be taken a little earlier than program order puts it: across threads
    ///   it can be behind a reading that happened before it by the processor's reordering
    ///   window, up to a few µs when a cache line is contended (hence `saturating_sub`); one
    ///   thread's readings have not been seen to go backwards;
    /// - it is on `monotonic_time`'s scale and origin but drifts from it (by the calibration
    ///   error and NTP's slewing of `CLOCK_MONOTONIC`: parts per million), so compare its
    ///   readings only with each other.
    #[inline]
    fn interval_time(&self) -> u64 {
        self.monotonic_time()
    }

    /// Wall time for bookkeeping that tolerates a few milliseconds of error (a gauge's TTL of
    /// 15 minutes), which some clocks can read more cheaply. Never ahead of
    /// [`wall_time`](Clock::wall_time). Defaults to `wall_time`, so a [`ManualClock`] stays
    /// exact.
    fn coarse_wall_time(&self) -> u64 {
        self.wall_time()
    }
}

/// The operating system's clocks: [`SystemTime`] and [`Instant`]; for
/// [`interval_time`](Clock::interval_time) the processor's time-stamp counter where it is
/// sound (see there).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

fn process_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// `SystemClock::monotonic_time`: on Linux `CLOCK_MONOTONIC` (through the vDSO, no system
/// call), elsewhere [`Instant`] since the first call.
#[inline]
fn clock_monotonic() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        // CLOCK_MONOTONIC cannot fail on Linux (std's `Instant::now` unwraps the same call).
        if rc == 0 && ts.tv_sec >= 0 {
            return (ts.tv_sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.tv_nsec as u64);
        }
    }
    let origin = process_origin();
    Instant::now().saturating_duration_since(origin).as_nanos() as u64
}

impl Clock for SystemClock {
    fn wall_time(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// On Linux, `CLOCK_MONOTONIC` in nanoseconds (the clock [`Instant`] reads there, without
    /// its conversions); elsewhere the time since the first call.
    #[inline]
    fn monotonic_time(&self) -> u64 {
        clock_monotonic()
    }

    /// On x86_64 Linux with an invariant TSC that the kernel keeps time with, the TSC
    /// scaled to nanoseconds (about half the cost of `CLOCK_MONOTONIC` in a KVM guest; the
    /// first 100 ms of readings, while it calibrates, are `CLOCK_MONOTONIC`);
    /// elsewhere [`monotonic_time`](Clock::monotonic_time).
    #[inline]
    fn interval_time(&self) -> u64 {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            tsc::TSC.interval_time()
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        {
            clock_monotonic()
        }
    }

    /// On Linux, `CLOCK_REALTIME_COARSE`: the time at the kernel's last tick (a few
    /// milliseconds of resolution), read without touching the hardware clock.
    #[cfg(target_os = "linux")]
    #[inline]
    fn coarse_wall_time(&self) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        if rc != 0 || ts.tv_sec < 0 {
            return self.wall_time();
        }
        (ts.tv_sec as u64)
            .saturating_mul(1000)
            .saturating_add(ts.tv_nsec as u64 / 1_000_000)
    }
}

/// A clock that only moves when told to. Clones share one time.
///
/// ```
/// use spectator::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000, 5);
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(2));
/// assert_eq!(shared.wall_time(), 1_002);
/// assert_eq!(shared.monotonic_time(), 2_000_005);
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<ManualTimes>,
}

#[derive(Debug)]
struct ManualTimes {
    wall_ms: AtomicU64,
    mono_ns: AtomicU64,
}

impl ManualClock {
    /// A clock at `wall_ms` milliseconds since the epoch and `mono_ns` monotonic nanoseconds.
    pub fn new(wall_ms: u64, mono_ns: u64) -> Self {
        ManualClock {
            inner: Arc::new(ManualTimes {
                wall_ms: AtomicU64::new(wall_ms),
                mono_ns: AtomicU64::new(mono_ns),
            }),
        }
    }

    /// Sets the wall time (milliseconds since the epoch).
    pub fn set_wall_time(&self, ms: u64) {
        self.inner.wall_ms.store(ms, Ordering::SeqCst);
    }

    /// Sets the monotonic time (nanoseconds).
    pub fn set_monotonic_time(&self, ns: u64) {
        self.inner.mono_ns.store(ns, Ordering::SeqCst);
    }

    /// Moves both times forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .inner
            .wall_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(ms))
            });
        let _ = self
            .inner
            .mono_ns
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(ns))
            });
    }
}

impl Clock for ManualClock {
    fn wall_time(&self) -> u64 {
        self.inner.wall_ms.load(Ordering::SeqCst)
    }

    fn monotonic_time(&self) -> u64 {
        self.inner.mono_ns.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn wall_time(&self) -> u64 {
        (**self).wall_time()
    }

    fn monotonic_time(&self) -> u64 {
        (**self).monotonic_time()
    }

    #[inline]
    fn interval_time(&self) -> u64 {
        (**self).interval_time()
    }

    fn coarse_wall_time(&self) -> u64 {
        (**self).coarse_wall_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_saturates_instead_of_overflowing() {
        let c = ManualClock::new(u64::MAX - 1, u64::MAX - 1);
        c.advance(Duration::from_secs(10));
        assert_eq!(c.wall_time(), u64::MAX);
        assert_eq!(c.monotonic_time(), u64::MAX);
    }

    #[test]
    fn coarse_wall_time_is_close_behind_wall_time() {
        let c = SystemClock;
        for _ in 0..1000 {
            let coarse = c.coarse_wall_time();
            let precise = c.wall_time();
            assert!(coarse <= precise, "{coarse} > {precise}");
            assert!(precise - coarse < 100, "{coarse} vs {precise}");
        }
        let m = ManualClock::new(1234, 0);
        assert_eq!(m.coarse_wall_time(), 1234);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock;
        let a = c.monotonic_time();
        let b = c.monotonic_time();
        assert!(b >= a);
    }

    #[test]
    fn system_clock_monotonic_time_moves_with_instant() {
        let c = SystemClock;
        let (a, start) = (c.monotonic_time(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (elapsed, b) = (start.elapsed(), c.monotonic_time());
        // [a, b] encloses [start, end], on a clock of the same rate.
        let measured = Duration::from_nanos(b - a);
        assert!(measured >= elapsed, "{measured:?} < {elapsed:?}");
        assert!(
            measured - elapsed < Duration::from_millis(50),
            "{measured:?} vs {elapsed:?}"
        );
    }

    /// Reads the process's TSC clock until its calibration has ended (with or without a
    /// scale): the tests below are about the TSC readings where this machine has them.
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn settle() -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tsc::TSC.settled() {
            assert!(Instant::now() < deadline, "TSC calibration did not end");
            SystemClock.interval_time();
            std::thread::sleep(Duration::from_millis(5));
        }
        tsc::TSC.calibrated().is_some()
    }

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    fn settle() -> bool {
        false
    }

    #[test]
    fn interval_time_defaults_to_monotonic_time() {
        let m = ManualClock::new(0, 42);
        assert_eq!(m.interval_time(), 42);
        m.advance(Duration::from_nanos(8));
        assert_eq!(Arc::new(m).interval_time(), 50);
    }

    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn interval_time_is_continuous_through_calibration() {
        // A clock of its own, so that this test sees the switch from CLOCK_MONOTONIC to the
        // TSC whatever other tests did first.
        let clock = tsc::Tsc::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = clock.interval_time();
        let mut after = 0;
        while after < 100_000 {
            let t = clock.interval_time();
            assert!(t >= last, "{t} < {last} (settled: {})", clock.settled());
            last = t;
            if clock.settled() {
                after += 1;
            } else {
                assert!(Instant::now() < deadline, "TSC calibration did not end");
            }
        }
        println!("TSC scale: {:?}", clock.calibrated());
    }

    #[test]
    fn interval_time_agrees_with_clock_monotonic_over_a_sleep() {
        let tsc = settle();
        let c = SystemClock;
        let (m0, i0) = (c.monotonic_time(), c.interval_time());
        std::thread::sleep(Duration::from_millis(200));
        let (i1, m1) = (c.interval_time(), c.monotonic_time());
        let (mono, interval) = (m1 - m0, i1.saturating_sub(i0));
        // The calibration error is ~0.5 ppm (0.1 µs here), plus NTP's slew of
        // CLOCK_MONOTONIC (at most 500 ppm: 100 µs) and the few ns between the reads.
        assert!(
            mono.abs_diff(interval) < 110_000,
            "CLOCK_MONOTONIC {mono} ns, interval_time {interval} ns (TSC: {tsc})"
        );
        assert!(interval >= 200_000_000, "{interval}");
    }

    /// Several threads read and publish the largest reading so far; each checks that its
    /// reading is not behind the largest one published before it (a happens-before edge:
    /// the load of that value).
    fn readings_across_threads(read: fn() -> u64) -> u64 {
        let shared = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let (mut last, mut worst_lag) = (0, 0);
                    for _ in 0..200_000 {
                        let seen = shared.load(Ordering::Acquire);
                        let t = read();
                        assert!(t >= last, "this thread's readings went back: {t} < {last}");
                        last = t;
                        worst_lag = worst_lag.max(seen.saturating_sub(t));
                        shared.fetch_max(t, Ordering::AcqRel);
                    }
                    worst_lag
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("no thread panics"))
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn monotonic_time_never_goes_backwards_across_threads() {
        assert_eq!(readings_across_threads(|| SystemClock.monotonic_time()), 0);
    }

    #[test]
    fn interval_time_is_behind_another_threads_earlier_reading_by_a_few_us_at_most() {
        let tsc = settle();
        let lag = readings_across_threads(|| SystemClock.interval_time());
        println!("interval_time: worst lag across threads {lag} ns (TSC: {tsc})");
        // Seen up to ~3 µs on a 2-vCPU KVM guest, with the line of `shared` contended.
        assert!(lag < 100_000, "{lag} ns");
    }

    /// How far the TSC readings drift from CLOCK_MONOTONIC over 10 s (BENCHMARKS.md):
    /// `cargo test -p spectator --release --lib drift -- --ignored --nocapture`
    #[test]
    #[ignore = "takes 10 s; a measurement"]
    fn interval_time_drift_over_10_s() {
        let tsc = settle();
        let c = SystemClock;
        // A first reading on the calibrated path pays for faulting its code in (~2 µs).
        c.interval_time();
        let (m0, i0) = (c.monotonic_time(), c.interval_time());
        for s in 1..=10 {
            std::thread::sleep(Duration::from_secs(1));
            let (i1, m1) = (c.interval_time(), c.monotonic_time());
            let drift = (i1 - i0) as i64 - (m1 - m0) as i64;
            println!("{s} s: interval_time - CLOCK_MONOTONIC = {drift} ns (TSC: {tsc})");
        }
    }
}
