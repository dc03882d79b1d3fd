//! Concurrent writers against concurrent polls: nothing lost, nothing counted twice, and no
//! record split between two polls.

use proptest::prelude::*;
use spectator::{Measurement, Registry};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

fn value(ms: &[Measurement], stat: &str) -> f64 {
    ms.iter()
        .filter(|m| m.id.tag("statistic") == Some(stat))
        .map(|m| m.value)
        .sum()
}

/// Sum of every value polled for series named `name`.
fn total(polls: &[Vec<Measurement>], name: &str) -> f64 {
    polls
        .iter()
        .flatten()
        .filter(|m| m.id.name() == name)
        .map(|m| m.value)
        .sum()
}

/// Polls completed so far by [`with_polls`]'s poller, for writers that want to overlap it.
type PollCount = Arc<AtomicUsize>;

/// Runs the writers while a poller polls; returns every poll's measurements (the last one
/// taken after all writers finished).
fn with_polls(
    r: &Registry,
    writers: Vec<Box<dyn FnOnce(PollCount) + Send>>,
) -> Vec<Vec<Measurement>> {
    let done = Arc::new(AtomicBool::new(false));
    let polled: PollCount = Arc::default();
    let handles: Vec<_> = writers
        .into_iter()
        .map(|w| {
            let polled = polled.clone();
            thread::spawn(move || w(polled))
        })
        .collect();
    let poller = {
        let (r, done, polled) = (r.clone(), done.clone(), polled.clone());
        thread::spawn(move || {
            let mut polls = Vec::new();
            while !done.load(Ordering::Relaxed) {
                polls.push(r.measurements());
                polled.fetch_add(1, Ordering::Relaxed);
                thread::yield_now();
            }
            polls
        })
    };
    for h in handles {
        h.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let mut polls = poller.join().unwrap();
    polls.push(r.measurements());
    polls
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sum_of_deltas_equals_sum_recorded(
        per_thread in proptest::collection::vec(
            proptest::collection::vec(0u32..5_000, 1..400), 1..4)
    ) {
        let r = Registry::default();
        let writers: Vec<Box<dyn FnOnce(PollCount) + Send>> = per_thread
            .iter()
            .cloned()
            .map(|values| {
                let r = r.clone();
                Box::new(move |_| {
                    let c = r.counter("c", &[]);
                    let t = r.timer("t", &[]);
                    let s = r.percentile_distribution_summary("s", &[]);
                    for v in values {
                        c.increment();
                        c.add(f64::from(v) / 4.0);
                        t.record(Duration::from_nanos(u64::from(v)));
                        s.record(f64::from(v));
                    }
                }) as Box<dyn FnOnce(PollCount) + Send>
            })
            .collect();
        let polls = with_polls(&r, writers);
        let all: Vec<u32> = per_thread.concat();
        let n = all.len() as f64;
        let sum: f64 = all.iter().map(|&v| f64::from(v)).sum();
        let squares: f64 = all.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let max = all.iter().copied().max().unwrap_or(0);
        let stat = |name: &str, s: &str| -> f64 {
            polls.iter().map(|p| {
                let of: Vec<_> = p.iter().filter(|m| m.id.name() == name).cloned().collect();
                value(&of, s)
            }).sum()
        };
        prop_assert_eq!(stat("c", "count"), n + sum / 4.0);
        prop_assert_eq!(stat("t", "count"), n);
        prop_assert!((stat("t", "totalTime") - sum * 1e-9).abs() <= 1e-12 * (1.0 + sum));
        prop_assert_eq!(stat("s", "count"), n);
        prop_assert_eq!(stat("s", "totalAmount"), sum);
        prop_assert_eq!(stat("s", "totalOfSquares"), squares);
        prop_assert_eq!(stat("s", "percentile"), n);
        // The largest value is reported by exactly one poll, the one that counts it.
        let maxes: Vec<f64> = polls.iter().flat_map(|p| p.iter()
            .filter(|m| m.id.name() == "s" && m.id.tag("statistic") == Some("max"))
            .map(|m| m.value)).collect();
        prop_assert_eq!(maxes.iter().cloned().fold(f64::MIN, f64::max), f64::from(max));
    }
}

#[test]
fn every_poll_with_a_count_has_its_max_and_vice_versa() {
    let r = Registry::default();
    let recorded = Arc::new(AtomicUsize::new(0));
    let writers: Vec<Box<dyn FnOnce(PollCount) + Send>> = (0..3)
        .map(|w| {
            let (r, recorded) = (r.clone(), recorded.clone());
            Box::new(move |polled: PollCount| {
                let s = r.distribution_summary("inv", &[]);
                // Keep writing until the poller has polled a few times meanwhile, however
                // the threads get scheduled.
                let mut i = 0u32;
                while i < 50_000 || polled.load(Ordering::Relaxed) < 5 {
                    s.record(f64::from(1 + (i + w) % 97));
                    i += 1;
                }
                recorded.fetch_add(i as usize, Ordering::Relaxed);
            }) as Box<dyn FnOnce(PollCount) + Send>
        })
        .collect();
    let polls = with_polls(&r, writers);
    let mut total = 0.0;
    for p in &polls {
        let count = value(p, "count");
        let has_max = p.iter().any(|m| m.id.tag("statistic") == Some("max"));
        assert_eq!(count > 0.0, has_max, "{p:?}");
        if count > 0.0 {
            let (sum, max) = (value(p, "totalAmount"), value(p, "max"));
            // A torn interval would show a max from records whose count went elsewhere.
            assert!(
                (1.0..=97.0).contains(&max) && (count..=97.0 * count).contains(&sum),
                "{p:?}"
            );
        }
        total += count;
    }
    assert_eq!(total, recorded.load(Ordering::Relaxed) as f64);
    assert!(polls.len() > 5, "the poller ran during the writes");
}

#[test]
fn threads_creating_the_same_and_different_ids_while_polling() {
    let r = Registry::default();
    let writers: Vec<Box<dyn FnOnce(PollCount) + Send>> = (0..4)
        .map(|w| {
            let r = r.clone();
            Box::new(move |_| {
                for i in 0..5_000 {
                    r.counter("shared", &[]).increment();
                    r.counter(
                        "mine",
                        &[("w", &w.to_string()), ("i", &(i % 50).to_string())],
                    )
                    .increment();
                }
            }) as Box<dyn FnOnce(PollCount) + Send>
        })
        .collect();
    let polls = with_polls(&r, writers);
    assert_eq!(total(&polls, "shared"), 20_000.0);
    assert_eq!(total(&polls, "mine"), 20_000.0);
    assert_eq!(r.len(), 1 + 4 * 50);
}

/// Three writers keep looking meters up with `lookup(registry, writer, i)`, recording once
/// and dropping the handle, while a zero TTL makes every poll try to remove every meter
/// nobody holds. Returns the total recorded into `churn` and the total the writers made.
fn churn_under_expiry(lookup: fn(&Registry, usize, usize)) -> (f64, f64) {
    let r = Registry::builder()
        .config(spectator::Config {
            meter_ttl: Duration::ZERO,
            ..Default::default()
        })
        .build();
    let writers: Vec<Box<dyn FnOnce(PollCount) + Send>> = (0..3)
        .map(|w| {
            let r = r.clone();
            Box::new(move |polled: PollCount| {
                let mut i = 0usize;
                while i < 30_000 || polled.load(Ordering::Relaxed) < 20 {
                    lookup(&r, w, i);
                    i += 1;
                }
                r.counter("written", &[("w", &w.to_string())]).add(i as f64);
            }) as Box<dyn FnOnce(PollCount) + Send>
        })
        .collect();
    let polls = with_polls(&r, writers);
    (total(&polls, "churn"), total(&polls, "written"))
}

#[test]
fn expiry_racing_lookups_loses_no_update() {
    let (churn, written) = churn_under_expiry(|r, w, i| {
        r.counter("churn", &[("k", &((i * 7 + w) % 1024).to_string())])
            .increment();
    });
    assert_eq!(churn, written);
    assert!(written >= 90_000.0);
}

#[test]
fn expiry_racing_repeated_call_sites_loses_no_update() {
    // The strings of each call are the same literals every time: lookups are answered from
    // the thread's memo of its call sites while polls remove the meters.
    const VALUES: [&str; 4] = ["a", "bb", "ccc", "dddddddddddddddddd"];
    let (churn, written) = churn_under_expiry(|r, w, i| {
        let v = VALUES[(i + w) % VALUES.len()];
        r.counter("churn", &[("k", v), ("site", "one")]).increment();
    });
    assert_eq!(churn, written);
    assert!(written >= 90_000.0);
}

#[test]
fn a_reused_buffer_with_other_contents_finds_its_own_meter() {
    // One call site whose tag value lives in the same buffer every call (same address, same
    // tag slice address), with different contents: each value keeps its own count.
    use std::fmt::Write;
    let r = Registry::default();
    let other = Registry::default();
    let mut buf = String::with_capacity(32);
    for i in 0..700u32 {
        buf.clear();
        write!(buf, "value-{}", i % 7).unwrap();
        let tags = [("k", buf.as_str()), ("a", "x")];
        r.counter("reused", &tags).increment();
        if i % 2 == 0 {
            other.counter("reused", &tags).increment();
        }
    }
    let ms = r.measurements();
    assert_eq!(ms.len(), 7);
    for m in &ms {
        assert_eq!(m.value, 100.0, "{}", m.id);
    }
    assert_eq!(
        other.measurements().iter().map(|m| m.value).sum::<f64>(),
        350.0
    );
    // Same strings, fewer tags, at the same slice address: another meter.
    let tags = [("k", "value-1"), ("a", "x")];
    r.counter("reused", &tags).increment();
    r.counter("reused", &tags[..1]).increment();
    let ms = r.measurements();
    assert_eq!(ms.len(), 2);
    assert!(ms.iter().all(|m| m.value == 1.0));
}

#[test]
fn many_threads_mixed_meters_inserts_lookups_and_expiry_keep_exact_totals() {
    // Eight writers; every record looks its meter up again (no cached handle), so lookups,
    // inserts (new ids keep arriving, merging the snapshot's levels) and removals (TTL 0: a
    // meter is removed at the first poll that finds it unowned) all race the polls.
    let r = Registry::builder()
        .config(spectator::Config {
            meter_ttl: Duration::ZERO,
            ..Default::default()
        })
        .build();
    const PER_THREAD: u32 = 4_000;
    let writers: Vec<Box<dyn FnOnce(PollCount) + Send>> = (0..8u32)
        .map(|w| {
            let r = r.clone();
            Box::new(move |polled: PollCount| {
                let mut i = 0u32;
                while i < PER_THREAD || polled.load(Ordering::Relaxed) < 10 {
                    let shared = (i % 3).to_string();
                    r.counter("mixed.counter", &[("k", &shared)]).add(2.0);
                    r.timer("mixed.timer", &[("k", &shared)])
                        .record(Duration::from_micros(u64::from(i % 7)));
                    r.percentile_distribution_summary("mixed.summary", &[("k", &shared)])
                        .record(f64::from(i % 5));
                    // A fresh id now and then (some shared between writers).
                    let fresh = ((i / 8) * 8 + w % 4).to_string();
                    r.counter("mixed.fresh", &[("id", &fresh)]).increment();
                    i += 1;
                }
                r.counter("mixed.done", &[("w", &w.to_string())])
                    .add(f64::from(i));
                let amount: u32 = (0..i).map(|j| j % 5).sum();
                r.counter("mixed.amount", &[("w", &w.to_string())])
                    .add(f64::from(amount));
            }) as Box<dyn FnOnce(PollCount) + Send>
        })
        .collect();
    let polls = with_polls(&r, writers);
    let sum = |name: &str, stat: &str| -> f64 {
        polls
            .iter()
            .flatten()
            .filter(|m| m.id.name() == name && m.id.tag("statistic") == Some(stat))
            .map(|m| m.value)
            .sum()
    };
    let records = sum("mixed.done", "count");
    assert!(records >= f64::from(8 * PER_THREAD));
    assert_eq!(sum("mixed.counter", "count"), 2.0 * records);
    assert_eq!(sum("mixed.timer", "count"), records);
    assert_eq!(sum("mixed.summary", "count"), records);
    assert_eq!(sum("mixed.summary", "percentile"), records);
    assert_eq!(
        sum("mixed.summary", "totalAmount"),
        sum("mixed.amount", "count")
    );
    assert_eq!(sum("mixed.fresh", "count"), records);
    assert!(polls.len() > 10, "the poller ran during the writes");
}

/// Growing the table moves its entries' references when nothing else holds the old table,
/// and copies them when a thread still does: both ways, every meter stays findable, exact,
/// and freed once (a double release or a leak would show here or under the sanitizers).
#[test]
fn growth_while_another_thread_holds_an_old_table() {
    let r = Registry::default();
    let first = r.counter("grow.held", &[("i", "0")]);
    let (hold, held) = std::sync::mpsc::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let r2 = r.clone();
        s.spawn(move || {
            // Takes (and keeps) a reference to the table as it is now, then waits while the
            // other thread grows it many times over.
            r2.counter("grow.held", &[("i", "0")]).increment();
            hold.send(()).unwrap();
            finished.recv().unwrap();
            for i in 0..5_000 {
                r2.counter("grow.held", &[("i", &i.to_string())])
                    .increment();
            }
        });
        held.recv().unwrap();
        // Copies while the other thread holds the first table, moves once it no longer can
        // be reached by anything but this thread (its reference is dropped at each growth).
        for i in 0..5_000 {
            r.counter("grow.held", &[("i", &i.to_string())]).increment();
        }
        done.send(()).unwrap();
    });
    first.increment();
    assert_eq!(r.len(), 5_000);
    let ms = r.measurements();
    assert_eq!(ms.len(), 5_000);
    let sum: f64 = ms.iter().map(|m| m.value).sum();
    assert_eq!(sum, 10_002.0);
    let zero = ms.iter().find(|m| m.id.tag("i") == Some("0")).unwrap();
    assert_eq!(zero.value, 4.0);
    drop(r);
    first.increment(); // the handle outlives the registry
}

/// A burst of registrations on one thread (the table moved at each growth) then lookups
/// from other threads: every id maps to one meter.
#[test]
fn registration_burst_then_lookups_from_other_threads() {
    let r = Registry::default();
    for i in 0..20_000 {
        r.counter("burst", &[("i", &i.to_string())]).increment();
    }
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for i in 0..20_000 {
                    r.counter("burst", &[("i", &i.to_string())]).increment();
                }
            });
        }
    });
    assert_eq!(r.len(), 20_000);
    let ms = r.measurements();
    assert_eq!(ms.len(), 20_000);
    assert!(ms.iter().all(|m| m.value == 3.0));
}
