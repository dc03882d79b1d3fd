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

    #[inline]
    fn monotonic_time(&self) -> u64 {
        let origin = process_origin();
        Instant::now().saturating_duration_since(origin).as_nanos() as u64
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
    fn system_clock_is_monotonic() {
        let c = SystemClock;
        let a = c.monotonic_time();
        let b = c.monotonic_time();
        assert!(b >= a);
    }
}
