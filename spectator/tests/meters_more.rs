//! The meters beyond the original seven, on a ManualClock: monotonic counters, age gauges,
//! gauges with a TTL, long task timers, polled meters, percentile ranges and tag value limits.
//! One test (or more) per row of what each reports at a poll, plus bad input.

use spectator::percentile_buckets::index_of;
use spectator::{Clock, Id, ManualClock, Measurement, Op, Registry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const T0: u64 = 1_700_000_000_000;
const MINUTE: Duration = Duration::from_secs(60);

fn manual() -> (ManualClock, Registry) {
    let clock = ManualClock::new(T0, 1_000);
    let registry = Registry::builder().clock(clock.clone()).build();
    (clock, registry)
}

/// `(id, op, value)` of each measurement, sorted by id.
fn polled(r: &Registry) -> Vec<(String, Op, f64)> {
    let mut ms: Vec<_> = r
        .measurements()
        .into_iter()
        .map(|m| (m.id.to_string(), m.op, m.value))
        .collect();
    ms.sort_by(|a, b| a.0.cmp(&b.0));
    ms
}

fn find<'a>(ms: &'a [Measurement], id: &str) -> Option<&'a Measurement> {
    ms.iter().find(|m| m.id.to_string() == id)
}

// ---- MonotonicCounter ----

#[test]
fn monotonic_counter_reports_increases_from_the_second_sample() {
    let (_, r) = manual();
    let m = r.monotonic_counter("disk.bytesRead", &[("dev", "sda")]);
    assert!(m.get().is_nan());
    assert!(r.measurements().is_empty(), "never set");
    m.set(1_000.0);
    assert!(r.measurements().is_empty(), "first sample is the base");
    m.set(1_200.0);
    m.set(1_500.0); // only the last sample before the poll counts
    assert_eq!(
        polled(&r),
        [(
            "disk.bytesRead:dev=sda,statistic=count".to_owned(),
            Op::Add,
            500.0
        )]
    );
    assert!(r.measurements().is_empty(), "unchanged: nothing");
    m.set(1_500.25);
    assert_eq!(polled(&r)[0].2, 0.25);
}

#[test]
fn monotonic_counter_rebases_silently_when_the_source_restarts() {
    let (_, r) = manual();
    let m = r.monotonic_counter("proc.reads", &[]);
    m.set(500.0);
    r.measurements();
    m.set(20.0); // restarted
    assert!(r.measurements().is_empty());
    m.set(35.0);
    assert_eq!(polled(&r)[0].2, 15.0);
}

#[test]
fn monotonic_counter_ignores_nan_infinite_and_negative_samples() {
    let (_, r) = manual();
    let m = r.monotonic_counter("proc.reads", &[]);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0] {
        m.set(bad);
    }
    assert!(m.get().is_nan());
    assert!(r.measurements().is_empty());
    m.set(10.0);
    r.measurements();
    for bad in [f64::NAN, f64::INFINITY, -5.0] {
        m.set(bad);
        assert_eq!(m.get(), 10.0);
    }
    m.set(12.0);
    assert_eq!(polled(&r)[0].2, 2.0);
}

#[test]
fn monotonic_counter_keeps_an_existing_statistic_tag() {
    let (_, r) = manual();
    let m = r.monotonic_counter_with_id(&Id::new("x", &[("statistic", "totalTime")]));
    m.set(1.0);
    r.measurements();
    m.set(3.0);
    assert_eq!(
        polled(&r),
        [("x:statistic=totalTime".to_owned(), Op::Add, 2.0)]
    );
}

// ---- AgeGauge ----

#[test]
fn age_gauge_reports_seconds_since_the_last_set() {
    let (clock, r) = manual();
    let g = r.age_gauge("job.timeSinceLastSuccess", &[]);
    assert_eq!(g.last_set(), None);
    assert!(r.measurements().is_empty(), "nothing before the first set");
    g.set_now();
    assert_eq!(g.last_set(), Some(T0));
    assert_eq!(
        polled(&r),
        [(
            "job.timeSinceLastSuccess:statistic=gauge".to_owned(),
            Op::Max,
            0.0
        )],
        "an age of 0 is reported"
    );
    clock.advance(Duration::from_millis(90_500));
    assert_eq!(polled(&r)[0].2, 90.5);
    g.set(T0 + 60_000);
    assert_eq!(polled(&r)[0].2, 30.5);
}

#[test]
fn age_gauge_set_in_the_future_reports_zero() {
    let (clock, r) = manual();
    let g = r.age_gauge("job.age", &[]);
    g.set(T0 + 10_000);
    assert_eq!(polled(&r)[0].2, 0.0);
    clock.advance(Duration::from_secs(15));
    assert_eq!(polled(&r)[0].2, 5.0);
    g.set(u64::MAX); // far future: no overflow, still 0, and it is not "never set"
    assert_eq!(polled(&r)[0].2, 0.0);
    g.set(0); // the epoch
    let age = polled(&r)[0].2;
    assert_eq!(age, (T0 + 15_000) as f64 / 1000.0);
}

#[test]
fn age_gauge_never_expires_even_unowned_and_idle() {
    let (clock, r) = manual();
    r.age_gauge("job.age", &[]).set_now(); // handle dropped at once
    r.counter("other", &[]).increment(); // a meter that does expire
    assert_eq!(r.len(), 2);
    for _ in 0..5 {
        clock.advance(Duration::from_secs(3600));
        r.measurements();
    }
    assert_eq!(r.len(), 1, "the counter expired, the age gauge did not");
    let ms = r.measurements();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].value, 5.0 * 3600.0);
    // Never set and unowned: kept too (it may be set later through a new lookup).
    drop(r.age_gauge("job.other", &[]));
    clock.advance(Duration::from_secs(7200));
    r.measurements();
    assert_eq!(r.len(), 2);
}

// ---- Gauge with TTL ----

#[test]
fn gauge_with_ttl_reports_while_its_last_set_is_at_most_ttl_old() {
    let (clock, r) = manual();
    let g = r.gauge_with_ttl("queue.size", &[], Duration::from_secs(30));
    g.set(4.0);
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        polled(&r),
        [("queue.size:statistic=gauge".to_owned(), Op::Max, 4.0)]
    );
    clock.advance(Duration::from_millis(1));
    assert!(r.measurements().is_empty(), "stale after 30 s");
    g.set(5.0);
    assert_eq!(polled(&r)[0].2, 5.0);
}

#[test]
fn gauge_with_ttl_longer_than_the_meter_ttl_keeps_reporting_and_is_kept() {
    let (clock, r) = manual();
    r.gauge_with_ttl("slow.value", &[], Duration::from_secs(3600))
        .set(7.0);
    clock.advance(30 * MINUTE);
    assert_eq!(polled(&r)[0].2, 7.0, "past the registry's 15 minutes");
    assert_eq!(r.len(), 1, "unowned but still within its TTL: kept");
    clock.advance(31 * MINUTE);
    assert!(r.measurements().is_empty());
    clock.advance(15 * MINUTE);
    r.measurements();
    assert_eq!(r.len(), 0, "expired once idle past both TTLs");
}

#[test]
fn gauge_with_ttl_on_an_id_registered_as_a_plain_gauge_sets_its_ttl() {
    let (clock, r) = manual();
    let plain = r.gauge("g", &[]);
    plain.set(1.0);
    let with_ttl = r.gauge_with_ttl("g", &[], Duration::from_secs(5));
    assert_eq!(r.len(), 1, "one gauge for the id");
    assert_eq!(with_ttl.get(), 1.0);
    clock.advance(Duration::from_secs(6));
    assert!(
        r.measurements().is_empty(),
        "the 5 s TTL applies to the gauge"
    );
    // A plain lookup later keeps the TTL; another gauge_with_ttl replaces it.
    r.gauge("g", &[]).set(2.0);
    clock.advance(Duration::from_secs(6));
    assert!(r.measurements().is_empty());
    r.gauge_with_ttl("g", &[], Duration::from_secs(60)).set(3.0);
    clock.advance(Duration::from_secs(59));
    assert_eq!(polled(&r)[0].2, 3.0);
    // A zero TTL reports only a set made at the poll's millisecond; Duration::MAX never ends.
    let z = r.gauge_with_ttl("z", &[], Duration::ZERO);
    z.set(1.0);
    assert!(find(&r.measurements(), "z:statistic=gauge").is_some());
    clock.advance(Duration::from_millis(1));
    assert!(find(&r.measurements(), "z:statistic=gauge").is_none());
    r.gauge_with_ttl("forever", &[], Duration::MAX).set(1.0);
    clock.advance(Duration::from_secs(1_000_000));
    assert!(find(&r.measurements(), "forever:statistic=gauge").is_some());
}

// ---- LongTaskTimer ----

#[test]
fn long_task_timer_sends_both_statistics_even_when_idle() {
    let (_, r) = manual();
    let t = r.long_task_timer("job.run", &[("kind", "batch")]);
    assert_eq!(
        polled(&r),
        [
            (
                "job.run:kind=batch,statistic=activeTasks".to_owned(),
                Op::Max,
                0.0
            ),
            (
                "job.run:kind=batch,statistic=duration".to_owned(),
                Op::Max,
                0.0
            ),
        ]
    );
    assert_eq!(t.active_tasks(), 0);
}

#[test]
fn long_task_timer_reports_running_tasks_and_their_total_time() {
    let (clock, r) = manual();
    let t = r.long_task_timer("job.run", &[]);
    let a = t.start();
    clock.advance(Duration::from_secs(10));
    let b = t.start();
    clock.advance(Duration::from_secs(5));
    // a: 15 s, b: 5 s.
    assert_eq!(
        polled(&r),
        [
            ("job.run:statistic=activeTasks".to_owned(), Op::Max, 2.0),
            ("job.run:statistic=duration".to_owned(), Op::Max, 20.0),
        ]
    );
    assert_eq!(a.elapsed(), Duration::from_secs(15));
    assert_eq!(a.stop(), Duration::from_secs(15));
    clock.advance(Duration::from_millis(500));
    assert_eq!(t.active_tasks(), 1);
    assert_eq!(t.duration(), Duration::from_millis(5_500));
    drop(b); // dropping stops
    assert_eq!(t.active_tasks(), 0);
    let ms = polled(&r);
    assert_eq!((ms[0].2, ms[1].2), (0.0, 0.0));
}

#[test]
fn long_task_timer_grows_past_its_first_block_of_slots() {
    let (clock, r) = manual();
    let t = r.long_task_timer("many", &[]);
    let tasks: Vec<_> = (0..200).map(|_| t.start()).collect();
    clock.advance(Duration::from_secs(2));
    assert_eq!(t.active_tasks(), 200);
    assert_eq!(t.duration(), Duration::from_secs(400));
    for task in tasks.into_iter().step_by(2) {
        assert_eq!(task.stop(), Duration::from_secs(2));
    }
    // Half the tasks were stopped (the others dropped with the Vec's iterator).
    assert_eq!(t.active_tasks(), 0);
    let again: Vec<_> = (0..70).map(|_| t.start()).collect();
    assert_eq!(t.active_tasks(), 70, "freed slots are reused");
    drop(again);
}

#[test]
fn long_task_timer_concurrent_start_and_stop_from_4_threads_is_exact() {
    let (clock, r) = manual();
    let t = r.long_task_timer("concurrent", &[]);
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let stop_polling = Arc::new(AtomicU64::new(0));
    let poller = {
        let t = t.clone();
        let r = r.clone();
        let stop = stop_polling.clone();
        std::thread::spawn(move || {
            let mut polls = 0u64;
            while stop.load(Ordering::Relaxed) == 0 {
                let active = t.active_tasks();
                assert!(active <= (THREADS * PER_THREAD) as u64, "{active}");
                // The clock does not move while the threads run: nothing has any age yet.
                assert_eq!(t.duration(), Duration::ZERO);
                // The registry's poll sees the same: a whole count, never negative, no time.
                let ms = r.measurements();
                let active = ms[0].value;
                assert!(
                    active >= 0.0 && active <= (THREADS * PER_THREAD) as f64,
                    "{ms:?}"
                );
                assert_eq!(active.fract(), 0.0);
                assert_eq!(ms[1].value, 0.0);
                polls += 1;
            }
            polls
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let t = t.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut kept = Vec::new();
                for i in 0..PER_THREAD {
                    let task = t.start();
                    if i % 2 == 0 {
                        assert_eq!(task.stop(), Duration::ZERO);
                    } else {
                        kept.push(task);
                    }
                }
                kept
            })
        })
        .collect();
    barrier.wait();
    let kept: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop_polling.store(1, Ordering::Relaxed);
    assert!(poller.join().unwrap() > 0);
    let running = (THREADS * PER_THREAD / 2) as f64;
    clock.advance(Duration::from_millis(1_500));
    let ms = polled(&r);
    assert_eq!(ms[0].2, running);
    assert_eq!(ms[1].2, running * 1.5, "durations summed exactly");
    let total: Duration = kept.into_iter().map(|task| task.stop()).sum();
    assert_eq!(total, Duration::from_millis(1_500) * running as u32);
    let ms = polled(&r);
    assert_eq!((ms[0].2, ms[1].2), (0.0, 0.0));
}

#[test]
fn long_task_timer_with_a_running_task_does_not_expire() {
    let (clock, r) = manual();
    let task = r.long_task_timer("job", &[]).start(); // only the task holds it
    clock.advance(2 * 15 * MINUTE);
    r.measurements();
    assert_eq!(r.len(), 1);
    assert_eq!(task.stop(), 30 * MINUTE);
    clock.advance(16 * MINUTE);
    r.measurements();
    assert_eq!(r.len(), 0, "idle and unowned: expired");
}

// ---- polled meters ----

#[test]
fn polled_gauge_samples_at_each_poll_and_goes_once_the_source_is_dropped() {
    let (clock, r) = manual();
    let source = Arc::new(AtomicU64::new(3));
    r.polled_gauge("pool.size", &[("pool", "db")], &source, |s| {
        s.load(Ordering::Relaxed) as f64
    });
    assert_eq!(
        polled(&r),
        [("pool.size:pool=db,statistic=gauge".to_owned(), Op::Max, 3.0)]
    );
    source.store(8, Ordering::Relaxed);
    assert_eq!(polled(&r)[0].2, 8.0);
    assert_eq!(
        Arc::strong_count(&source),
        1,
        "the registry holds a Weak only"
    );
    drop(source);
    assert!(
        r.measurements().is_empty(),
        "dropped between polls: nothing"
    );
    assert_eq!(r.len(), 1);
    clock.advance(16 * MINUTE);
    r.measurements();
    assert_eq!(r.len(), 0, "and the meter goes");
}

#[test]
fn polled_gauge_registered_again_takes_the_new_source() {
    let (_, r) = manual();
    let a = Arc::new(1.0f64);
    let b = Arc::new(2.0f64);
    r.polled_gauge("v", &[], &a, |v| *v);
    r.polled_gauge("v", &[], &b, |v| *v * 10.0);
    assert_eq!(r.len(), 1);
    assert_eq!(polled(&r)[0].2, 20.0);
    drop(a);
    assert_eq!(polled(&r)[0].2, 20.0);
}

#[test]
fn polled_gauge_function_that_panics_or_returns_nan_reports_nothing() {
    let (_, r) = manual();
    let s = Arc::new(());
    r.polled_gauge("boom", &[], &s, |_| panic!("source failure"));
    r.polled_gauge("nan", &[], &s, |_| f64::NAN);
    r.polled_gauge("ok", &[], &s, |_| 1.0);
    assert_eq!(
        polled(&r),
        [("ok:statistic=gauge".to_owned(), Op::Max, 1.0)]
    );
    // Nothing was poisoned: the next poll works the same.
    assert_eq!(polled(&r).len(), 1);
}

#[test]
fn polled_function_may_use_the_registry() {
    let (_, r) = manual();
    let s = Arc::new(5.0f64);
    let inner = r.clone();
    r.polled_gauge("outer", &[], &s, move |v| {
        inner.counter("inner.calls", &[]).increment();
        *v
    });
    // A meter registered while a poll runs may or may not be seen by that poll (the table
    // is filled in place, in hash order); the next poll reports both.
    let first = polled(&r);
    assert!(
        first.iter().any(|m| m.0 == "outer:statistic=gauge"),
        "{first:?}"
    );
    assert!((1..=2).contains(&first.len()), "{first:?}");
    let ms = polled(&r);
    assert_eq!(ms.len(), 2, "{ms:?}");
}

#[test]
fn polled_monotonic_counter_reports_increases_and_goes_with_its_source() {
    let (clock, r) = manual();
    let bytes = Arc::new(AtomicU64::new(100));
    r.polled_monotonic_counter("net.bytesIn", &[], &bytes, |b| {
        b.load(Ordering::Relaxed) as f64
    });
    assert!(r.measurements().is_empty(), "first sample");
    bytes.store(250, Ordering::Relaxed);
    assert_eq!(
        polled(&r),
        [("net.bytesIn:statistic=count".to_owned(), Op::Add, 150.0)]
    );
    bytes.store(10, Ordering::Relaxed); // restarted
    assert!(r.measurements().is_empty());
    bytes.store(40, Ordering::Relaxed);
    assert_eq!(polled(&r)[0].2, 30.0);
    // An unchanged source is alive: not expired.
    clock.advance(20 * MINUTE);
    r.measurements();
    assert_eq!(r.len(), 1);
    drop(bytes);
    assert!(r.measurements().is_empty());
    clock.advance(16 * MINUTE);
    r.measurements();
    assert_eq!(r.len(), 0);
}

// ---- percentile ranges ----

fn bucket_ids(ms: &[Measurement]) -> Vec<(String, f64)> {
    let mut b: Vec<_> = ms
        .iter()
        .filter_map(|m| Some((m.id.tag("percentile")?.to_owned(), m.value)))
        .collect();
    b.sort_by(|a, b| a.0.cmp(&b.0));
    b
}

#[test]
fn percentile_timer_with_range_clamps_buckets_not_statistics() {
    let (_, r) = manual();
    let min = Duration::from_micros(100);
    let max = Duration::from_millis(5);
    let t = r.percentile_timer_with_range("cache.get", &[], min, max);
    t.record(Duration::from_micros(20)); // below min
    t.record(Duration::from_millis(1));
    t.record(Duration::from_secs(2)); // above max
    let ms = r.measurements();
    let hex = |ns: u128| format!("T{:04X}", index_of(ns as u64));
    let mut want = vec![
        (hex(min.as_nanos()), 1.0),
        (hex(1_000_000), 1.0),
        (hex(max.as_nanos()), 1.0),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(bucket_ids(&ms), want);
    let total = find(&ms, "cache.get:statistic=totalTime").unwrap().value;
    assert!((total - 2.00102).abs() < 1e-12, "{total}");
    assert_eq!(find(&ms, "cache.get:statistic=max").unwrap().value, 2.0);
    // The default range would have put 20 µs in the 10 ms bucket.
    let d = r.percentile_timer("default", &[]);
    d.record(Duration::from_micros(20));
    let ms = r.measurements();
    assert_eq!(
        bucket_ids(&ms),
        [(format!("T{:04X}", index_of(10_000_000)), 1.0)]
    );
}

#[test]
fn percentile_timer_range_min_above_max_is_swapped_and_the_first_range_stays() {
    let (_, r) = manual();
    let t = r.percentile_timer_with_range(
        "swapped",
        &[],
        Duration::from_millis(5),
        Duration::from_micros(100),
    );
    t.record(Duration::from_secs(1));
    t.record(Duration::ZERO);
    let hex = |ns: u64| format!("T{:04X}", index_of(ns));
    let mut want = vec![(hex(5_000_000), 1.0), (hex(100_000), 1.0)];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(bucket_ids(&r.measurements()), want);
    // Asking again with another range returns the same meter, with its first range.
    let again = r.percentile_timer_with_range("swapped", &[], Duration::ZERO, Duration::MAX);
    again.record(Duration::from_secs(1));
    assert_eq!(t.count(), 1);
    assert_eq!(bucket_ids(&r.measurements()), [(hex(5_000_000), 1.0)]);
    // Extreme ranges never panic.
    let e = r.percentile_timer_with_range("extreme", &[], Duration::MAX, Duration::MAX);
    e.record(Duration::from_nanos(1));
    e.record(Duration::MAX);
    assert_eq!(e.count(), 2);
}

#[test]
fn percentile_summary_with_range_clamps_buckets_not_statistics() {
    let (_, r) = manual();
    let s = r.percentile_distribution_summary_with_range("payload", &[], 100.0, 10_000.0);
    s.record(5.0);
    s.record(500.0);
    s.record(1e6);
    let ms = r.measurements();
    let hex = |v: u64| format!("D{:04X}", index_of(v));
    let mut want = vec![(hex(100), 1.0), (hex(500), 1.0), (hex(10_000), 1.0)];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(bucket_ids(&ms), want);
    assert_eq!(
        find(&ms, "payload:statistic=totalAmount").unwrap().value,
        1_000_505.0
    );
    assert_eq!(find(&ms, "payload:statistic=max").unwrap().value, 1e6);
}

#[test]
fn percentile_summary_bad_ranges_are_fixed_never_a_panic() {
    let (_, r) = manual();
    let cases: [(&str, f64, f64, u64, u64); 6] = [
        // (name, min, max, bucket of 0, bucket of 1e30)
        ("swapped", 1_000.0, 10.0, 10, 1_000),
        ("nan-min", f64::NAN, 50.0, 0, 50),
        ("nan-max", 5.0, f64::NAN, 5, i64::MAX as u64),
        ("negative", -10.0, -1.0, 0, 0),
        (
            "infinite",
            f64::NEG_INFINITY,
            f64::INFINITY,
            0,
            i64::MAX as u64,
        ),
        ("both-nan", f64::NAN, f64::NAN, 0, i64::MAX as u64),
    ];
    for (name, min, max, low, high) in cases {
        let s = r.percentile_distribution_summary_with_range(name, &[], min, max);
        s.record(0.0);
        s.record(1e30);
        s.record(f64::NAN); // ignored, as always
        s.record(-1.0); // ignored, as always
        assert_eq!(s.count(), 2, "{name}");
        let ms = r.measurements();
        let hex = |v: u64| format!("D{:04X}", index_of(v));
        let mut want = vec![(hex(low), 1.0), (hex(high), 1.0)];
        if low == high {
            want = vec![(hex(low), 2.0)];
        }
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(bucket_ids(&ms), want, "{name}");
    }
}

// ---- tag value limits ----

fn limited_count(r: &Registry) -> f64 {
    r.counter("spectator.meters", &[("id", "limited")]).count()
}

#[test]
fn tag_value_limit_keeps_the_first_values_and_sends_the_rest_as_others() {
    let clock = ManualClock::new(T0, 0);
    let r = Registry::builder()
        .clock(clock)
        .tag_value_limit("req", "user", 2)
        .build();
    for user in ["a", "b", "c", "a", "d", "b"] {
        r.counter("req", &[("user", user), ("zone", "z1")])
            .increment();
    }
    // Other names and other keys are not limited.
    for user in ["p", "q", "r"] {
        r.counter("other", &[("user", user)]).increment();
    }
    let ms = r.measurements();
    let value = |user: &str| {
        find(&ms, &format!("req:statistic=count,user={user},zone=z1")).map(|m| m.value)
    };
    assert_eq!(value("a"), Some(2.0));
    assert_eq!(value("b"), Some(2.0));
    assert_eq!(value("--others--"), Some(2.0));
    assert_eq!(value("c"), None);
    assert_eq!(
        ms.iter().filter(|m| m.id.name() == "other").count(),
        3,
        "{ms:?}"
    );
    assert_eq!(
        find(&ms, "spectator.meters:id=limited,statistic=count").map(|m| m.value),
        Some(2.0)
    );
    // Kept values are found by id too; a value already registered is found as before.
    let by_id = r.counter_with_id(&Id::new("req", &[("user", "a"), ("zone", "z1")]));
    by_id.increment();
    let by_id_new = r.counter_with_id(&Id::new("req", &[("user", "e"), ("zone", "z1")]));
    by_id_new.increment();
    let ms = r.measurements();
    assert_eq!(
        find(&ms, "req:statistic=count,user=--others--,zone=z1").map(|m| m.value),
        Some(1.0)
    );
    assert_eq!(limited_count(&r), 0.0, "taken by the poll");
}

#[test]
fn tag_value_limit_hit_from_4_threads_keeps_exactly_max_values() {
    const MAX: usize = 10;
    let r = Registry::builder()
        .clock(ManualClock::new(T0, 0))
        .tag_value_limit("hits", "k", MAX)
        .build();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let r = r.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..100 {
                    // Each thread walks the values in its own order.
                    let v = (i * 7 + t * 13) % 100;
                    r.counter("hits", &[("k", &v.to_string())]).increment();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ms = r.measurements();
    let hits: Vec<_> = ms.iter().filter(|m| m.id.name() == "hits").collect();
    let kept = hits
        .iter()
        .filter(|m| m.id.tag("k") != Some("--others--"))
        .count();
    assert_eq!(kept, MAX, "{hits:?}");
    let total: f64 = hits.iter().map(|m| m.value).sum();
    assert_eq!(total, 400.0, "nothing lost");
    let others = hits
        .iter()
        .find(|m| m.id.tag("k") == Some("--others--"))
        .unwrap()
        .value;
    let limited = find(&ms, "spectator.meters:id=limited,statistic=count")
        .unwrap()
        .value;
    assert_eq!(
        limited, others,
        "every value sent as --others-- was counted"
    );
}

#[test]
fn tag_value_limit_of_zero_sends_every_value_as_others_and_later_limits_replace() {
    let r = Registry::builder()
        .tag_value_limit("z", "k", 5)
        .tag_value_limit("z", "k", 0)
        .tag_value_limit("z", "j", 1)
        .build();
    r.counter("z", &[("k", "a"), ("j", "x")]).increment();
    r.counter("z", &[("k", "b"), ("j", "y")]).increment();
    r.counter("z", &[("k", "--others--"), ("j", "x")])
        .increment();
    let ms = r.measurements();
    assert_eq!(
        find(&ms, "z:j=x,k=--others--,statistic=count").map(|m| m.value),
        Some(2.0)
    );
    assert_eq!(
        find(&ms, "z:j=--others--,k=--others--,statistic=count").map(|m| m.value),
        Some(1.0)
    );
}

// ---- kinds and ids ----

#[test]
fn new_kinds_conflict_like_the_others() {
    let (_, r) = manual();
    let c = r.counter("dup", &[]);
    let m = r.monotonic_counter("dup", &[]); // detached: reports nothing
    m.set(1.0);
    m.set(5.0);
    r.age_gauge("dup", &[]).set_now();
    let _task = r.long_task_timer("dup", &[]).start();
    let s = Arc::new(1.0);
    r.polled_gauge("dup", &[], &s, |v| *v);
    c.increment();
    assert_eq!(
        polled(&r),
        [("dup:statistic=count".to_owned(), Op::Add, 1.0)]
    );
    assert_eq!(r.len(), 1);
}

#[test]
fn registry_clock_is_the_one_used() {
    let (clock, r) = manual();
    assert_eq!(r.clock().wall_time(), T0);
    let g = r.age_gauge("a", &[]);
    clock.set_wall_time(T0 + 5);
    g.set_now();
    assert_eq!(g.last_set(), Some(T0 + 5));
}
