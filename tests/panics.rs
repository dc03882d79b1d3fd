//! A panic during a publish step (a bug in an output, the poll or a clock) is contained to
//! that step: the loop logs and counts it (`spectator.publish.panics`) and carries on. The
//! trigger is real: a clock whose `wall_time` panics on chosen threads, which the poll reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spectator::testing::aggregator::Aggregator;
use spectator::{Clock, Registry, SystemClock};

/// The system clock, except that `wall_time` panics while `traps` is above zero when called
/// on a thread whose name starts with `prefix` (one trap used per panic).
struct TrapClock {
    traps: Arc<AtomicUsize>,
    prefix: &'static str,
}

impl Clock for TrapClock {
    fn wall_time(&self) -> u64 {
        let here = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with(self.prefix));
        if here
            && self
                .traps
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(1))
                .is_ok()
        {
            panic!("injected clock failure");
        }
        SystemClock.wall_time()
    }
    fn monotonic_time(&self) -> u64 {
        SystemClock.monotonic_time()
    }
}

fn registry(agg: &Aggregator, traps: &Arc<AtomicUsize>, prefix: &'static str) -> Registry {
    Registry::builder()
        .uri(&agg.uri())
        .frequency(Duration::from_millis(100))
        .timeout(Duration::from_millis(500))
        .clock(TrapClock {
            traps: traps.clone(),
            prefix,
        })
        .build()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The loop survives panics in its steps (wherever the clock is read: the step alignment,
/// the poll, the registration of a self-metric), counts them, and goes on publishing.
fn survives(agg: &Aggregator, r: &Registry, traps: &Arc<AtomicUsize>) {
    r.counter("before", &[]).increment();
    wait_until("the first publish", Duration::from_secs(10), || {
        agg.accepted_total("before") == 1.0
    });
    traps.store(3, Ordering::SeqCst);
    wait_until("the panics", Duration::from_secs(10), || {
        traps.load(Ordering::SeqCst) == 0
    });
    r.counter("after", &[]).add(2.0);
    wait_until(
        "publishing after the panics",
        Duration::from_secs(10),
        || {
            agg.accepted_total("after") == 2.0
                && agg.accepted_total("spectator.publish.panics") >= 1.0
        },
    );
    // Each contained panic is counted at most once (a count can itself be lost when the
    // counter's registration hits the next trap).
    let panics = agg.accepted_total("spectator.publish.panics");
    assert!((1.0..=3.0).contains(&panics), "{panics}");
}

#[test]
fn the_loop_on_its_own_thread_survives_panics() {
    let agg = Aggregator::start().unwrap();
    let traps = Arc::new(AtomicUsize::new(0));
    let r = registry(&agg, &traps, "spectator-publish");
    let publisher = r.start().unwrap();
    survives(&agg, &r, &traps);
    // Still a working loop: the final publish delivers too.
    r.counter("last", &[]).increment();
    publisher.stop();
    assert_eq!(agg.accepted_total("last"), 1.0);
}

#[test]
fn the_loop_on_a_runtime_survives_panics() {
    // A panic in a spawned task would end that task: the loop must contain it itself.
    let agg = Aggregator::start().unwrap();
    let traps = Arc::new(AtomicUsize::new(0));
    let r = registry(&agg, &traps, "loop-runtime");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loop-runtime")
        .enable_all()
        .build()
        .unwrap();
    let publisher = rt.block_on(async { r.start().unwrap() });
    survives(&agg, &r, &traps);
    rt.block_on(publisher.shutdown());
}

#[test]
fn a_panicking_final_publish_is_contained() {
    let agg = Aggregator::start().unwrap();
    let traps = Arc::new(AtomicUsize::new(0));
    let r = registry(&agg, &traps, "spectator-flush");
    let publisher = r.start().unwrap();
    r.counter("unsent", &[]).increment();
    traps.store(1, Ordering::SeqCst);
    // The final publish (on a thread named spectator-flush) panics in its poll: stop returns
    // an empty report instead of unwinding into the caller.
    let report = publisher.stop();
    assert_eq!(traps.load(Ordering::SeqCst), 0, "the trap was not reached");
    assert_eq!(report.sent, 0, "{report:?}");
    // The panic was counted, and the next publish sends the count along with what the failed
    // step had not polled yet (the clock is read before any meter).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(r.publish());
    assert_eq!(agg.accepted_total("spectator.publish.panics"), 1.0);
    assert_eq!(agg.accepted_total("unsent"), 1.0);
}
