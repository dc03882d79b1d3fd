//! Max gauge: the largest value set during each interval.

use super::atomic::AtomicMaxF64;
use super::{push, Meter, MeterKind, Poll};
use crate::clock::Clock;
use crate::id::{Id, Stat};
use crate::measurement::Measurement;
use std::sync::Arc;

/// Reports the largest value set since the previous poll (`statistic=max`, op Max), then
/// starts over; nothing when no value was set. NaN and infinities are ignored. One
/// `fetch_max` per `set`.
///
/// ```
/// let registry = spectator::Registry::default();
/// let inflight = registry.max_gauge("server.inflight", &[]);
/// inflight.set(3.0);
/// inflight.set(7.0);
/// inflight.set(5.0);
/// assert_eq!(inflight.get(), 7.0);
/// ```
#[derive(Clone, Debug)]
pub struct MaxGauge {
    pub(crate) core: Arc<MaxGaugeCore>,
}

#[derive(Debug, Default)]
pub(crate) struct MaxGaugeCore {
    pub(crate) max: AtomicMaxF64,
}

impl Meter for MaxGaugeCore {
    fn kind(&self) -> &'static str {
        MaxGauge::KIND
    }

    fn measure(&self, id: &Id, poll: &Poll, out: &mut Vec<Measurement>) -> u64 {
        poll.updated_if(push(out, id, Stat::Max, self.max.take()))
    }
}

impl MeterKind for MaxGauge {
    const KIND: &'static str = "max gauge";
    type Core = MaxGaugeCore;
    fn new_core(_: &Arc<dyn Clock>) -> MaxGaugeCore {
        MaxGaugeCore::default()
    }
    fn from_core(core: Arc<MaxGaugeCore>) -> MaxGauge {
        MaxGauge { core }
    }
}

impl MaxGauge {
    /// Offers a value; the poll reports the largest since the previous poll.
    #[inline]
    pub fn set(&self, value: f64) {
        if value.is_finite() {
            self.core.max.update(value);
        }
    }

    /// The largest value since the last poll (NaN if none).
    pub fn get(&self) -> f64 {
        self.core.max.get()
    }
}
