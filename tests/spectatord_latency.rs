//! The recording side of the spectatord output under faults: while publishes to a unix socket
//! fail (socket absent, receiver's buffer full, a line too long for a datagram), a thread
//! hammering `increment()` is never blocked: its worst increment stays within 5 ms.
//!
//! The machine may be shared: an increment during which the scheduler preempted the thread
//! (an involuntary context switch and no voluntary one, from `getrusage(RUSAGE_THREAD)`) is
//! counted apart, since that time is not spent in spectator. An increment that *waits* (a
//! lock, a syscall that sleeps) makes a voluntary switch and is always measured.
#![cfg(target_os = "linux")]

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spectator::{Registry, RegistryBuilder};

const BOUND: Duration = Duration::from_millis(5);
const INCREMENTS: usize = 1_000_000;
/// Each scenario hammers for at most this long, whatever the count reached.
const MAX_TIME: Duration = Duration::from_secs(8);

fn socket_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spectator-lat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// (voluntary, involuntary) context switches of this thread so far.
fn switches() -> (i64, i64) {
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD reads the calling thread.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0);
    (usage.ru_nvcsw, usage.ru_nivcsw)
}

struct Hammered {
    increments: usize,
    worst: Duration,
    worst_preempted: Duration,
    preempted: usize,
    publishes: usize,
    dropped: usize,
}

/// Publishes `registry` in a loop on one thread (after `before_publish`) while this thread
/// increments one counter; returns the latencies seen.
fn hammer(registry: &Registry, before_publish: impl Fn(&Registry) + Send + Sync) -> Hammered {
    let counter = registry.counter("app.hammered", &[]);
    let done = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let publisher = s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (mut publishes, mut dropped) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                before_publish(registry);
                let report = rt.block_on(registry.publish());
                publishes += 1;
                dropped += report.dropped_output;
            }
            (publishes, dropped)
        });
        let started = Instant::now();
        let mut h = Hammered {
            increments: 0,
            worst: Duration::ZERO,
            worst_preempted: Duration::ZERO,
            preempted: 0,
            publishes: 0,
            dropped: 0,
        };
        while h.increments < INCREMENTS && started.elapsed() < MAX_TIME {
            let (vol, invol) = switches();
            let t0 = Instant::now();
            counter.increment();
            let took = t0.elapsed();
            let (vol2, invol2) = switches();
            h.increments += 1;
            if vol2 == vol && invol2 != invol {
                h.preempted += 1;
                h.worst_preempted = h.worst_preempted.max(took);
            } else {
                h.worst = h.worst.max(took);
            }
        }
        done.store(true, Ordering::Relaxed);
        (h.publishes, h.dropped) = publisher.join().unwrap();
        h
    })
}

fn check(scenario: &str, registry: &Registry, before_publish: impl Fn(&Registry) + Send + Sync) {
    let h = hammer(registry, before_publish);
    println!(
        "{scenario}: {} increments, worst {:?} ({} preempted by the scheduler, worst of \
         those {:?}); {} publishes dropped {} measurements",
        h.increments, h.worst, h.preempted, h.worst_preempted, h.publishes, h.dropped
    );
    assert!(h.increments >= 10_000, "{scenario}: too few increments");
    assert!(h.publishes >= 5, "{scenario}: too few publishes");
    assert!(h.dropped > 0, "{scenario}: the publishes did not fail");
    assert!(
        h.worst <= BOUND,
        "{scenario}: an increment took {:?} while publishes failed",
        h.worst
    );
}

fn registry(path: &std::path::Path) -> Registry {
    RegistryBuilder::default()
        .output_location(&format!("unix://{}", path.display()))
        .build()
}

#[test]
fn socket_absent() {
    let path = socket_path("absent.unix");
    check("socket absent", &registry(&path), |_| {});
}

#[test]
fn receiver_buffer_full() {
    let path = socket_path("full.unix");
    // Bound, never read: its queue fills after a few datagrams and stays full.
    let _sock = UnixDatagram::bind(&path).unwrap();
    let r = registry(&path);
    let many: Vec<_> = (0..2_000)
        .map(|i| r.counter("app.many", &[("i", &i.to_string())]))
        .collect();
    check("buffer full", &r, move |_| {
        for c in &many {
            c.increment();
        }
    });
}

#[test]
fn line_longer_than_a_datagram() {
    let path = socket_path("oversized.unix");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let r = registry(&path);
    let long = "v".repeat(70_000);
    let oversized = r.counter("app.oversized", &[("tag", &long)]);
    check("oversized line", &r, move |_| {
        oversized.increment();
        // Drained, so that only the long line fails.
        let mut buf = vec![0u8; 65_536];
        while sock.recv(&mut buf).is_ok() {}
    });
}
