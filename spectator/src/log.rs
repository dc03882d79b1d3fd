//! Rate-limited logging, so that a bad call in a hot loop cannot flood the host's logs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lets one message through per interval; counts what it held back.
pub(crate) struct RateLimit {
    next_allowed_s: AtomicU64,
    suppressed: AtomicU64,
}

/// Seconds between two warnings from the same place.
const INTERVAL_S: u64 = 60;

impl RateLimit {
    pub(crate) const fn new() -> RateLimit {
        RateLimit {
            next_allowed_s: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a message may be logged now, `n` being how many were held back since
    /// the previous one.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let next = self.next_allowed_s.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_allowed_s
                .compare_exchange(next, now + INTERVAL_S, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// `tracing::warn!` at most once a minute per call site.
macro_rules! warn_limited {
    (target: $target:literal, $($arg:tt)+) => {{
        static LIMIT: $crate::log::RateLimit = $crate::log::RateLimit::new();
        if let Some(suppressed) = LIMIT.allow() {
            tracing::warn!(target: $target, suppressed, $($arg)+);
        }
    }};
}
pub(crate) use warn_limited;

#[cfg(test)]
mod tests {
    #[test]
    fn second_message_within_interval_is_held_back() {
        let l = super::RateLimit::new();
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
    }
}
