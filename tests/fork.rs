//! Forking a process whose publisher is running (the situation the Python client warns about):
//! the child must be able to record, publish and start a publisher of its own, without
//! deadlock, and the parent must carry on as before.
//!
//! A true `fork(2)`, in a test binary of its own (so that no other test's threads hold locks
//! at the moment of the fork). The child is bounded by `alarm(2)` and by the parent, which
//! kills it if it has not exited in time.
#![cfg(unix)]

use std::time::{Duration, Instant};

use spectator::testing::aggregator::Aggregator;
use spectator::{Publisher, Registry};

/// What the child does; returns its exit status (0: all good).
fn child(r: &Registry, inherited: &Publisher) -> i32 {
    // The parent's unpublished deltas were copied too: discard them (the parent sends them).
    r.measurements();
    let c = r.counter("fork.child", &[]);
    c.add(5.0);
    r.timer("fork.child.timer", &[])
        .record(Duration::from_millis(3));
    // A publish from the child, on a runtime of its own.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return 10,
    };
    let report = rt.block_on(r.publish());
    if report.sent != 5 || report.pending != 0 {
        eprintln!("child publish: {report:?}");
        return 11;
    }
    // A publisher of its own.
    let p = match r.start() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("child start: {e}");
            return 12;
        }
    };
    c.add(2.0);
    let report = p.stop();
    if report.sent < 1 || report.pending != 0 {
        eprintln!("child stop: {report:?}");
        return 13;
    }
    // The parent's publisher, as copied by fork: its loop thread is not in this process, so
    // stopping it must neither wait for nor signal that loop, and only publishes.
    let report = inherited.stop();
    if report.pending != 0 || report.dropped != 0 {
        eprintln!("inherited stop: {report:?}");
        return 14;
    }
    0
}

#[test]
fn forked_child_records_and_starts_its_own_publisher() {
    let agg = Aggregator::start().unwrap();
    let r = Registry::builder()
        .uri(&agg.uri())
        .frequency(Duration::from_secs(1))
        .timeout(Duration::from_millis(500))
        .build();
    let parent = r.counter("fork.parent", &[]);
    parent.add(3.0);
    // The publisher runs on its own thread; after its first publish, its HTTP client holds a
    // keep-alive connection served by that thread's runtime (which the child will not have).
    let p = r.start().unwrap();
    assert!(agg.wait_for_requests(1, Duration::from_secs(5)));
    // Fork between two steps, not in the middle of a publish.
    std::thread::sleep(Duration::from_millis(100));
    parent.add(4.0);

    // SAFETY: the child only runs Rust code of this crate and spectator, then leaves with
    // `_exit` (no destructors or atexit handlers of the parent's state).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe { libc::alarm(20) };
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(&r, &p))).unwrap_or(99);
        unsafe { libc::_exit(code) };
    }

    let mut status = 0;
    let end = Instant::now() + Duration::from_secs(30);
    let exited = loop {
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break true;
        }
        if Instant::now() > end {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, &mut status, 0) };
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exited, "the child deadlocked");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: status {status:#x} (exit code {})",
        libc::WEXITSTATUS(status)
    );

    // The parent's publisher still works, and nothing was sent twice.
    parent.add(1.0);
    let report = p.stop();
    assert_eq!((report.pending, report.dropped), (0, 0), "{report:?}");
    assert_eq!(agg.accepted_total("fork.parent"), 8.0);
    assert_eq!(agg.accepted_total("fork.child"), 7.0);
}
