//! The hot path of the macros allocates nothing: after the first call resolved the call site's
//! meter, `#[counted]`, `#[timed]` (with `long_task` too), `time!` and `metrics!` statics only
//! touch atomics.
//!
//! A counting global allocator (per thread, so the test harness's other threads don't count)
//! checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_in(f: impl Fn()) -> usize {
    f(); // first call resolves the call sites
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..1000 {
        f();
    }
    ALLOCATIONS.with(Cell::get) - before
}

#[spectator::counted("hot.counted")]
fn counted() {}

#[spectator::timed("hot.timed", percentiles)]
fn timed() {}

#[spectator::timed]
fn timed_default() -> Result<u32, ()> {
    Ok(1)
}

#[spectator::timed("hot.long", long_task)]
fn long_task() -> Result<u32, ()> {
    Ok(1)
}

#[spectator::timed("hot.long.async", long_task)]
async fn long_task_async() -> u32 {
    2
}

spectator::metrics! {
    static HITS: Counter = "hot.static";
    static LATENCY: Timer = "hot.static.latency";
    static READ: MonotonicCounter = "hot.static.read";
    static SYNCED: AgeGauge = "hot.static.synced";
    static JOBS: LongTaskTimer = "hot.static.jobs";
}

/// A waker that does nothing (`Waker::noop` is newer than the minimum supported Rust).
struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// Runs a future that completes at its first poll, without a runtime (whose own bookkeeping
/// could allocate).
fn run_ready<F: std::future::Future>(f: F) -> F::Output {
    static WAKER: std::sync::OnceLock<std::task::Waker> = std::sync::OnceLock::new();
    let waker = WAKER.get_or_init(|| std::sync::Arc::new(Noop).into());
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(waker);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the future is not ready"),
    }
}

#[test]
fn recording_through_macros_does_not_allocate() {
    assert_eq!(allocations_in(counted), 0, "#[counted]");
    assert_eq!(allocations_in(timed), 0, "#[timed]");
    assert_eq!(
        allocations_in(|| {
            timed_default().unwrap();
        }),
        0,
        "#[timed] with result tags"
    );
    assert_eq!(
        allocations_in(|| spectator::time!("hot.block", {})),
        0,
        "time!"
    );
    assert_eq!(
        allocations_in(|| {
            HITS.increment();
            LATENCY.record(Duration::from_micros(5));
        }),
        0,
        "metrics!"
    );
    assert_eq!(
        allocations_in(|| {
            long_task().unwrap();
        }),
        0,
        "#[timed(long_task)]"
    );
    assert_eq!(
        allocations_in(|| assert_eq!(run_ready(long_task_async()), 2)),
        0,
        "#[timed(long_task)] on an async fn"
    );
    assert_eq!(
        allocations_in(|| spectator::time!("hot.long.block", long_task, {})),
        0,
        "time!(long_task)"
    );
    assert_eq!(
        allocations_in(|| {
            READ.set(1.0);
            SYNCED.set_now();
            drop(JOBS.start());
        }),
        0,
        "metrics! with the newer kinds"
    );
    // The counting itself works: an allocation is seen.
    assert!(allocations_in(|| drop(std::hint::black_box(Box::new(1u64)))) >= 1000);
    assert_eq!(
        spectator::global().counter("hot.counted", &[]).count(),
        1001.0
    );
}
