//! A global registry on a `ManualClock`, for test binaries whose macros must record into a
//! clock the test moves. Install it before anything else in the binary touches `global()`.

use spectator::{ManualClock, Registry};

/// The clock of the global registry, which the first call installs (wall time
/// 1 600 000 000 000 ms, monotonic 5 000 ns).
pub fn clock() -> ManualClock {
    static CLOCK: std::sync::OnceLock<ManualClock> = std::sync::OnceLock::new();
    CLOCK
        .get_or_init(|| {
            let clock = ManualClock::new(1_600_000_000_000, 5_000);
            let registry = Registry::builder().clock(clock.clone()).build();
            assert!(spectator::__private::set_global(registry).is_ok());
            clock
        })
        .clone()
}
