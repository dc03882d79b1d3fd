//! High cardinality: a runaway loop of distinct ids is capped by `Config::max_meters`, so memory
//! stays bounded and the refusals are counted; idle meters expire and free their slots.
//!
//! The memory check reads VmRSS from /proc/self/status (Linux only; elsewhere it is skipped).

use spectator::{Config, ManualClock, Measurement, Registry};
use std::time::Duration;

fn refused(ms: &[Measurement]) -> f64 {
    ms.iter()
        .filter(|m| m.id.name() == "spectator.meters" && m.id.tag("id") == Some("refused"))
        .map(|m| m.value)
        .sum()
}

/// Resident set size in bytes, when the platform says.
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn two_million_distinct_ids_stay_within_the_cap() {
    const CAP: usize = 1_000;
    const IDS: u32 = 2_000_000;
    let r = Registry::builder()
        .config(Config {
            max_meters: CAP,
            ..Config::default()
        })
        .build();
    let mut before = None;
    let mut value = String::new();
    for i in 0..IDS {
        use std::fmt::Write;
        value.clear();
        let _ = write!(value, "{i}");
        r.counter("runaway.loop", &[("request", &value)])
            .increment();
        if i == 100_000 {
            // Past the cap and warmed up: from here on memory must not grow with the ids.
            before = rss();
        }
    }
    // The cap, plus the self-metric that counts refusals (exempt from the cap).
    assert_eq!(r.len(), CAP + 1);
    let ms = r.measurements();
    assert_eq!(refused(&ms), f64::from(IDS) - CAP as f64);
    assert_eq!(ms.len(), CAP + 1, "refused ids report nothing");
    if let (Some(before), Some(after)) = (before, rss()) {
        // Registered, 1.9 million more meters would take hundreds of MiB.
        let grown = after.saturating_sub(before);
        assert!(
            grown < 32 << 20,
            "RSS grew by {} KiB over 1.9 million refused ids",
            grown >> 10
        );
    }
}

#[test]
fn idle_meters_expire_and_free_their_slots() {
    const CAP: usize = 500;
    let clock = ManualClock::new(1_600_000_000_000, 0);
    let r = Registry::builder()
        .clock(clock.clone())
        .config(Config {
            max_meters: CAP,
            ..Config::default()
        })
        .build();
    let kept = r.counter("kept", &[]);
    for i in 0..CAP as u32 * 2 {
        r.counter("burst", &[("i", &i.to_string())]).increment();
    }
    assert_eq!(r.len(), CAP + 1);
    let ms = r.measurements();
    assert_eq!(refused(&ms), f64::from(CAP as u32 + 1));
    // Idle, and no handle held: gone once 15 minutes have passed since they were last active.
    clock.advance(Duration::from_secs(14 * 60));
    r.measurements();
    assert_eq!(r.len(), CAP + 1, "not idle for 15 minutes yet");
    clock.advance(Duration::from_secs(60));
    r.measurements();
    assert_eq!(
        r.len(),
        2,
        "left: the meter with a live handle and the refusal counter"
    );
    // The slots are free again: new ids are registered and report.
    for i in 0..10 {
        r.counter("after", &[("i", &i.to_string())]).increment();
    }
    kept.increment();
    let ms = r.measurements();
    assert_eq!(ms.iter().filter(|m| m.id.name() == "after").count(), 10);
    assert_eq!(refused(&ms), 0.0);
    assert_eq!(r.len(), 12);
}
