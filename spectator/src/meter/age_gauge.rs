//! Age gauge: seconds since something last happened ("time since last success").

use super::{push, LineHint, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Wall time stored before the first set.
const NEVER: u64 = u64::MAX;

/// Reports the age of an event: each poll reports `statistic=gauge` (op Max) = the seconds
/// from the last [`set_now`](AgeGauge::set_now) or [`set`](AgeGauge::set) to the poll, by the
/// registry clock's wall time. Nothing is reported before the first set; a set in the future
/// reports 0 until that time comes.
///
/// It is the "time since last success" pattern: alert when the age grows past what a
/// periodic job or heartbeat should allow. So an age gauge never expires: it keeps reporting
/// (and growing) when no handle is held any more, for the life of the registry.
///
/// With the spectatord output, an age gauge that was set is sent as an `A:` line carrying the
/// time of the last set (in seconds since the epoch) at every step instead of a gauge value:
/// spectatord then computes the age itself and keeps it growing even after this process is
/// gone, which is what lets the alert fire when the process died. (spectatord reads the value
/// `0` as "now", so a set at the epoch itself is sent as 1 ms after it.) Over HTTP, Atlas
/// gets the age in seconds.
///
/// spectator-py's and spectator-go's `AgeGauge` (`now()`, `set(seconds)`; here `set` takes
/// milliseconds, like the registry clock), Spectator Java's age-gauge pattern (a
/// `PolledMeter` computing `now - lastSuccess`).
///
/// ```
/// use spectator::{ManualClock, Registry};
/// use std::time::Duration;
/// let clock = ManualClock::new(1_700_000_000_000, 0);
/// let registry = Registry::builder().clock(clock.clone()).build();
/// let last_success = registry.age_gauge("job.timeSinceLastSuccess", &[]);
/// assert!(registry.measurements().is_empty()); // never set
/// last_success.set_now();
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(registry.measurements()[0].value, 90.0);
/// ```
#[derive(Clone)]
pub struct AgeGauge {
    pub(crate) core: Arc<AgeGaugeCore>,
}

pub(crate) struct AgeGaugeCore {
    /// Wall time (ms) of the last set; [`NEVER`] before the first.
    set_at: AtomicU64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AgeGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgeGauge")
            .field("last_set", &self.last_set())
            .finish()
    }
}

impl AgeGaugeCore {
    fn set_at(&self) -> Option<u64> {
        match self.set_at.load(Ordering::Relaxed) {
            NEVER => None,
            ms => Some(ms),
        }
    }
}

impl Meter for AgeGaugeCore {
    fn kind(&self) -> &'static str {
        AgeGauge::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        let Some(set_at) = self.set_at() else {
            return 0;
        };
        let age_ms = poll.now_ms.saturating_sub(set_at);
        push(out, id, Stat::Gauge, age_ms as f64 / 1000.0);
        set_at
    }

    fn expires(&self) -> bool {
        false
    }

    fn line_hint(&self, id: &Id, poll: &Poll) -> Option<(Id, LineHint)> {
        let since_ms = self.set_at()?.min(poll.now_ms);
        Some((
            id.with_default_stat_of(Stat::Gauge),
            LineHint::Age { since_ms },
        ))
    }
}

impl MeterKind for AgeGauge {
    const KIND: &'static str = "age gauge";
    type Core = AgeGaugeCore;
    fn new_core(clock: &Arc<dyn Clock>) -> AgeGaugeCore {
        AgeGaugeCore {
            set_at: AtomicU64::new(NEVER),
            clock: clock.clone(),
        }
    }
    fn from_core(core: Arc<AgeGaugeCore>) -> AgeGauge {
        AgeGauge { core }
    }
}

impl AgeGauge {
    /// Records that the event happened now (the registry clock's
    /// [coarse](crate::Clock::coarse_wall_time) wall time: a few milliseconds of resolution).
    #[inline]
    pub fn set_now(&self) {
        self.set(self.core.clock.coarse_wall_time());
    }

    /// Records that the event happened at `wall_ms`, milliseconds since the Unix epoch. A time
    /// in the future reports an age of 0 until it comes.
    #[inline]
    pub fn set(&self, wall_ms: u64) {
        // NEVER is not a time anyone can mean: the year 584 million.
        self.core
            .set_at
            .store(wall_ms.min(NEVER - 1), Ordering::Relaxed);
    }

    /// The wall time (ms since the epoch) of the last set, `None` before the first.
    pub fn last_set(&self) -> Option<u64> {
        self.core.set_at()
    }
}
