//! A program whose `global()` registry auto-started publishing and that returns from `main`
//! without `stop_global()` still publishes its last partial step (Linux: an `atexit`
//! handler), within a bounded time even when the aggregator does not answer. Each scenario
//! runs in a child process: the child test returns, the harness's `main` returns, and the
//! process exits.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::time::{Duration, Instant};

use spectator::testing::aggregator::Aggregator;

mod support;

use support::child::{is_child, run_child};

#[test]
fn the_last_step_is_published_at_exit() {
    let agg = Aggregator::start().unwrap();
    let (ok, out) = run_child(
        "child_records_and_returns",
        &[
            ("SPECTATOR_URI", &agg.uri()),
            // No step ends while the child runs: only the exit flush can deliver.
            ("SPECTATOR_FREQUENCY", "600"),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(agg.accepted_total("exit.requests"), 4.0, "{out}");
    assert_eq!(agg.accepted_total("exit.level"), 7.0, "{out}");
}

#[test]
fn child_records_and_returns() {
    if !is_child() {
        return;
    }
    spectator::global().counter("exit.requests", &[]).add(4.0);
    spectator::global().gauge("exit.level", &[]).set(7.0);
    // No stop_global(): the process exits after this test returns.
}

#[test]
fn the_exit_flush_is_bounded_when_the_aggregator_hangs() {
    // Accepts connections and reads, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/api/v1/publish", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
            let _ = s.read(&mut buf);
            held.push(s);
        }
    });
    let started = Instant::now();
    let (ok, out) = run_child(
        "child_records_and_returns",
        &[
            ("SPECTATOR_URI", &uri),
            ("SPECTATOR_FREQUENCY", "600"),
            ("SPECTATOR_TIMEOUT", "1"),
        ],
    );
    let took = started.elapsed();
    assert!(ok, "{out}");
    // The exit waits at most 2 × timeout + 1 s = 3 s for the final publish (three attempts
    // of 1 s would take longer); the rest is the child's start.
    assert!(took < Duration::from_secs(8), "{took:?}\n{out}");
}
