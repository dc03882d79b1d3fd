//! `#[timed]` and `time!` time with the registry clock's monotonic time (as
//! `Timer::stopwatch` does), so a `ManualClock` on the global registry drives what they record.
//!
//! This binary installs the global registry itself, before anything else touches it, through
//! the macros' support module; its one test moves the shared clock, so nothing runs beside it.

use std::time::Duration;

use spectator::{global, time, timed, Clock, Registry};

mod support;

use support::manual_global::clock;

#[timed("clock.plain")]
fn plain(ms: u64) -> u64 {
    clock().advance(Duration::from_millis(ms));
    ms
}

#[timed("clock.percentiles", percentiles)]
fn percentiles(ms: u64) {
    clock().advance(Duration::from_millis(ms));
}

#[timed("clock.result")]
fn fallible(ms: u64) -> Result<u64, String> {
    clock().advance(Duration::from_millis(ms));
    if ms > 100 {
        return Err(format!("{ms} ms is too slow"));
    }
    Ok(ms)
}

#[timed("clock.async")]
async fn asynchronous(ms: u64) -> u64 {
    clock().advance(Duration::from_millis(ms));
    ms
}

#[test]
fn macros_time_with_the_registry_clock() {
    let clock = clock();
    assert_eq!(global().clock().monotonic_time(), clock.monotonic_time());

    // Exactly the clock's advance, whatever the real time taken.
    assert_eq!(plain(250), 250);
    assert_eq!(plain(1), 1);
    let timer = global().timer("clock.plain", &[]);
    assert_eq!(timer.count(), 2);
    assert_eq!(timer.total_time(), Duration::from_millis(251));

    // A clock that stands still records zero.
    std::thread::sleep(Duration::from_millis(5));
    let slept = time!("clock.block", {
        std::thread::sleep(Duration::from_millis(5));
        7
    });
    assert_eq!(slept, 7);
    let timer = global().timer("clock.block", &[]);
    assert_eq!(timer.count(), 1);
    assert_eq!(timer.total_time(), Duration::ZERO);

    let moved = time!("clock.block.moved", percentiles, {
        clock.advance(Duration::from_secs(2));
        8
    });
    assert_eq!(moved, 8);
    let timer = global().percentile_timer("clock.block.moved", &[]);
    assert_eq!(timer.total_time(), Duration::from_secs(2));

    percentiles(40);
    let timer = global().percentile_timer("clock.percentiles", &[]);
    assert_eq!(timer.total_time(), Duration::from_millis(40));

    assert_eq!(fallible(30), Ok(30));
    assert!(fallible(500).is_err());
    let result = |r| {
        global()
            .timer("clock.result", &[("result", r)])
            .total_time()
    };
    assert_eq!(result("success"), Duration::from_millis(30));
    assert_eq!(result("failure"), Duration::from_millis(500));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(asynchronous(60)), 60);
    let timer = global().timer("clock.async", &[("result", "success")]);
    assert_eq!(timer.total_time(), Duration::from_millis(60));

    // The installed registry is the one `global()` returns; a second install is refused.
    assert!(spectator::__private::set_global(Registry::default()).is_err());
}
