//! Time sources: wall time for gauge TTLs and publish steps, monotonic time for timers.
//!
//! Every registry owns one [`Clock`]. Production code uses [`SystemClock`]; tests drive a
//! [`ManualClock`] so that TTLs, steps and recorded durations are deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of wall-clock and monotonic time.
///
/// Implementations must be cheap: timers read the monotonic time twice per recorded call.
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

    /// Wall time for bookkeeping that tolerates a few milliseconds of error (a gauge's TTL of
    /// 15 minutes), which some clocks can read more cheaply. Never ahead of
    /// [`wall_time`](Clock::wall_time). Defaults to `wall_time`, so a [`ManualClock`] stays
    /// exact.
    fn coarse_wall_time(&self) -> u64 {
        self.wall_time()
    }
}

/// The operating system's clocks: [`SystemTime`] and [`Instant`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

fn process_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn wall_time(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// On Linux, `CLOCK_MONOTONIC` in nanoseconds (the clock [`Instant`] reads there, without
    /// its conversions: timers read this twice per record); elsewhere the time since the
    /// first call.
    #[inline]
    fn monotonic_time(&self) -> u64 {
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
}
