//! `#[timed(long_task)]` and `time!(.., long_task, ..)` on a `ManualClock`: while a measured
//! call runs, its long task timer reports it in `activeTasks` and its running time so far in
//! `duration`; when the call returns, unwinds or its future is dropped, both fall back to 0
//! (and are still sent).
//!
//! This binary installs the global registry itself, before anything else touches it, through
//! the macros' support module; its one test moves the shared clock and polls the registry, so
//! nothing runs beside it.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use spectator::{global, time, timed};

mod support;

use support::manual_global::clock;

/// `(activeTasks, duration)` of `name` as one poll of the registry reports them, or `None`
/// when the poll has nothing for it.
fn polled(name: &str) -> Option<(f64, f64)> {
    let all = global().measurements();
    let stat = |s: &str| {
        all.iter()
            .find(|m| m.id.name() == name && m.id.tag("statistic") == Some(s))
            .map(|m| m.value)
    };
    Some((stat("activeTasks")?, stat("duration")?))
}

/// What the long task timer `name` reports now, read through the registry.
fn running(name: &str) -> (u64, Duration) {
    let ltt = global().long_task_timer(name, &[]);
    (ltt.active_tasks(), ltt.duration())
}

/// Advances the clock by `ms` from inside the call, and reports what the poll sees then.
#[timed("clock.long.sync", long_task)]
fn job(ms: u64) -> Result<Option<(f64, f64)>, String> {
    clock().advance(Duration::from_millis(ms));
    let seen = polled("clock.long.sync");
    if ms > 1_000 {
        return Err(format!("{ms} ms is too slow"));
    }
    Ok(seen)
}

/// Runs until told to stop, on another thread.
#[timed("clock.long.thread", long_task)]
fn worker(started: &mpsc::Sender<()>, stop: &mpsc::Receiver<()>) {
    started.send(()).unwrap();
    stop.recv().unwrap();
}

#[timed("clock.long.async", long_task)]
async fn waits(gate: tokio::sync::oneshot::Receiver<()>) -> Result<(), String> {
    gate.await.map_err(|e| e.to_string())
}

#[timed("clock.long.panic", long_task)]
fn panics() {
    clock().advance(Duration::from_secs(1));
    panic!("the job failed")
}

/// Polls `f` until it holds, for at most 10 s of real time.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn long_tasks_report_active_tasks_and_duration_while_running() {
    let clock = clock();

    // Sync: seen from inside the call, then both 0 after it (and still sent).
    assert_eq!(job(250), Ok(Some((1.0, 0.25))));
    assert_eq!(running("clock.long.sync"), (0, Duration::ZERO));
    assert_eq!(polled("clock.long.sync"), Some((0.0, 0.0)));
    // An `Err` ends the task like any return; there is no `result` tag.
    assert!(job(2_000).is_err());
    assert_eq!(running("clock.long.sync"), (0, Duration::ZERO));

    // A call on another thread, watched from this one while it runs.
    let (started_tx, started) = mpsc::channel();
    let (stop, stop_rx) = mpsc::channel();
    let thread = std::thread::spawn(move || worker(&started_tx, &stop_rx));
    started.recv().unwrap();
    assert_eq!(running("clock.long.thread"), (1, Duration::ZERO));
    clock.advance(Duration::from_secs(3));
    assert_eq!(running("clock.long.thread"), (1, Duration::from_secs(3)));
    assert_eq!(polled("clock.long.thread"), Some((1.0, 3.0)));
    clock.advance(Duration::from_millis(1_500));
    assert_eq!(polled("clock.long.thread"), Some((1.0, 4.5)));
    stop.send(()).unwrap();
    thread.join().unwrap();
    assert_eq!(polled("clock.long.thread"), Some((0.0, 0.0)));

    // Two calls in flight: durations add up exactly.
    let (started_tx, started) = mpsc::channel();
    let (stop_a, stop_a_rx) = mpsc::channel();
    let (stop_b, stop_b_rx) = mpsc::channel();
    let started_b = started_tx.clone();
    let a = std::thread::spawn(move || worker(&started_tx, &stop_a_rx));
    started.recv().unwrap();
    clock.advance(Duration::from_secs(2));
    let b = std::thread::spawn(move || worker(&started_b, &stop_b_rx));
    started.recv().unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(running("clock.long.thread"), (2, Duration::from_secs(4)));
    stop_a.send(()).unwrap();
    a.join().unwrap();
    assert_eq!(running("clock.long.thread"), (1, Duration::from_secs(1)));
    stop_b.send(()).unwrap();
    b.join().unwrap();
    assert_eq!(running("clock.long.thread"), (0, Duration::ZERO));

    // An unwind ends the task.
    assert!(std::panic::catch_unwind(panics).is_err());
    assert_eq!(running("clock.long.panic"), (0, Duration::ZERO));

    // A block.
    let inside = time!("clock.long.block", long_task, {
        clock.advance(Duration::from_millis(40));
        running("clock.long.block")
    });
    assert_eq!(inside, (1, Duration::from_millis(40)));
    assert_eq!(running("clock.long.block"), (0, Duration::ZERO));

    // Async: running from the first poll; a cancelled future ends its task.
    // A worker thread runs the spawned call while this one watches it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_never, gate) = tokio::sync::oneshot::channel::<()>();
        let mut pending = Box::pin(waits(gate));
        assert_eq!(running("clock.long.async"), (0, Duration::ZERO));
        // One poll (the gate stays closed), then the timeout gives the future back.
        let polled_once = tokio::time::timeout(Duration::from_millis(1), &mut pending).await;
        assert!(polled_once.is_err());
        clock.advance(Duration::from_secs(2));
        assert_eq!(running("clock.long.async"), (1, Duration::from_secs(2)));
        drop(pending);
        assert_eq!(running("clock.long.async"), (0, Duration::ZERO));
        assert_eq!(polled("clock.long.async"), Some((0.0, 0.0)));

        let (open, gate) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(waits(gate));
        eventually("the spawned call to start", || {
            running("clock.long.async").0 == 1
        });
        clock.advance(Duration::from_millis(700));
        assert_eq!(polled("clock.long.async"), Some((1.0, 0.7)));
        open.send(()).unwrap();
        assert_eq!(task.await.unwrap(), Ok(()));
        assert_eq!(running("clock.long.async"), (0, Duration::ZERO));
    });
}
