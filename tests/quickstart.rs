//! The README's main job, `cargo run --example quickstart`, run briefly: with no
//! `SPECTATOR_URI` it must show what its embedded receiver got, and with one it must publish
//! there. The example's code is compiled into this test (`#[path]`), and each scenario runs in
//! a child process (this binary re-run on one `child_*` test), so the environment and the
//! once-only global registry are fresh.

use std::collections::BTreeSet;
use std::time::Duration;

use spectator::receiver::Aggregator;

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

mod support;

use support::child::{is_child, run_child};

/// What the quickstart's workload records, whatever its timing.
const EXPECTED: &[&str] = &[
    "method.timed",
    "shop.backlog",
    "shop.biggestOrder",
    "shop.cartSize",
    "shop.checkout",
    "shop.pageViews",
    "shop.payment",
];

#[test]
fn quickstart_shows_what_its_local_receiver_got() {
    let (ok, out) = run_child("child_local_receiver", &[]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("quickstart summary: "))
        .unwrap_or_else(|| panic!("no summary line in\n{out}"));
    assert!(line.contains(" rejected=0 "), "{line}");
    let names: BTreeSet<&str> = line
        .split_once(" names=")
        .map(|(_, names)| names.split(',').collect())
        .unwrap_or_default();
    for name in EXPECTED {
        assert!(names.contains(name), "{name} missing from {line}");
    }
    // The table itself: a header per step and rows with rates.
    assert!(out.contains("NAME "), "{out}");
    assert!(out.contains("/s "), "{out}");
}

#[test]
fn child_local_receiver() {
    if !is_child() {
        return;
    }
    let summary = quickstart::run(Duration::from_secs(3));
    assert!(summary.local);
    assert_eq!(summary.rejected, 0);
    for name in EXPECTED {
        assert!(summary.names.contains(*name), "{name}: {summary:?}");
    }
}

#[test]
fn quickstart_publishes_to_spectator_uri() {
    let agg = Aggregator::start().unwrap();
    agg.set_strict_lengths(true);
    let (ok, out) = run_child(
        "child_spectator_uri",
        &[("SPECTATOR_URI", &agg.uri()), ("NETFLIX_APP", "quickstart")],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("publishing to {} (no local receiver)", agg.uri())),
        "{out}"
    );
    assert!(!out.contains("quickstart summary"), "{out}");
    let requests = agg.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.status, Some(200), "{r:?}");
    }
    let accepted = agg.accepted();
    let names: BTreeSet<&str> = accepted.iter().map(|m| m.name()).collect();
    for name in EXPECTED {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    assert!(accepted.iter().all(|m| m.tags["nf.app"] == "quickstart"));
}

#[test]
fn child_spectator_uri() {
    if !is_child() {
        return;
    }
    let summary = quickstart::run(Duration::from_secs(2));
    assert!(!summary.local);
}

#[test]
fn quickstart_writes_spectatord_lines_to_spectator_output_location() {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let location = format!("udp://{}", sock.local_addr().unwrap());
    let (ok, out) = run_child(
        "child_spectator_uri",
        &[("SPECTATOR_OUTPUT_LOCATION", &location)],
    );
    assert!(ok, "{out}");
    assert!(out.contains(&format!("publishing to {location}")), "{out}");
    let mut names = BTreeSet::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = sock.recv(&mut buf) {
        for line in std::str::from_utf8(&buf[..n]).unwrap().lines() {
            // TYPE:NAME[,TAGS]:VALUE
            let (kind, rest) = line.split_once(':').unwrap();
            assert!(matches!(kind, "c" | "g" | "m"), "{line}");
            let name = rest.split([',', ':']).next().unwrap();
            names.insert(name.to_owned());
        }
        if EXPECTED.iter().all(|n| names.contains(*n)) {
            break;
        }
    }
    for name in EXPECTED {
        assert!(names.contains(*name), "{name} missing from {names:?}");
    }
}
