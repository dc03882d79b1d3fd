//! Registry behaviour: lookups, type conflicts, expiry, gauges' TTL, bad input.

use spectator::{Clock, Id, ManualClock, Measurement, Op, Registry};
use std::time::Duration;

fn manual() -> (ManualClock, Registry) {
    let clock = ManualClock::new(1_600_000_000_000, 0);
    let registry = Registry::builder().clock(clock.clone()).build();
    (clock, registry)
}

fn find<'a>(ms: &'a [Measurement], id: &str) -> Option<&'a Measurement> {
    ms.iter().find(|m| m.id.to_string() == id)
}

#[test]
fn same_id_in_any_tag_order_is_one_meter() {
    let r = Registry::default();
    let a = r.counter("c", &[("x", "1"), ("y", "2")]);
    let b = r.counter("c", &[("y", "2"), ("x", "1")]);
    let c = r.counter_with_id(&Id::new("c", &[("x", "1"), ("y", "2")]));
    a.increment();
    b.increment();
    c.add(2.0);
    assert_eq!(a.count(), 4.0);
    assert_eq!(r.len(), 1);
    // A repeated key keeps its last value, on the lookup path as on the id path.
    r.counter("c", &[("x", "0"), ("y", "2"), ("x", "1")])
        .increment();
    assert_eq!(a.count(), 5.0);
    assert_eq!(r.len(), 1);
}

#[test]
fn type_conflict_returns_a_detached_meter_and_keeps_the_first() {
    let r = Registry::default();
    let c = r.counter("dup", &[]);
    let t = r.timer("dup", &[]);
    t.record(Duration::from_secs(1));
    c.increment();
    let ms = r.measurements();
    assert_eq!(ms.len(), 1, "{ms:?}");
    assert_eq!(ms[0].id.to_string(), "dup:statistic=count");
    assert_eq!(r.len(), 1);
}

#[test]
fn counter_poll_reports_deltas_and_skips_zero() {
    let (_, r) = manual();
    let c = r.counter("c", &[]);
    c.add(0.0);
    c.add(-1.0);
    c.add(f64::INFINITY);
    c.add(f64::NAN);
    assert!(r.measurements().is_empty());
    c.increment();
    c.add(0.5);
    let ms = r.measurements();
    assert_eq!(ms.len(), 1);
    assert_eq!((ms[0].op, ms[0].value), (Op::Add, 1.5));
    assert_eq!(c.count(), 0.0);
}

#[test]
fn existing_statistic_is_kept_for_counters_and_overwritten_for_timers() {
    let (_, r) = manual();
    r.counter("c", &[("statistic", "percentile")]).increment();
    r.timer("t", &[("statistic", "gauge")])
        .record(Duration::from_millis(1));
    let ms = r.measurements();
    let c = find(&ms, "c:statistic=percentile").expect("counter keeps its statistic");
    assert_eq!(c.op, Op::Add);
    assert!(find(&ms, "t:statistic=count").is_some());
    assert!(find(&ms, "t:statistic=gauge").is_none());
    assert_eq!(ms.len(), 5);
}

#[test]
fn timer_reports_seconds_and_nothing_when_idle() {
    let (_, r) = manual();
    let t = r.timer("t", &[]);
    t.record(Duration::from_millis(500));
    t.record(Duration::from_secs(2));
    t.record(Duration::ZERO);
    let ms = r.measurements();
    let v = |s: &str| find(&ms, &format!("t:statistic={s}")).map(|m| (m.op, m.value));
    assert_eq!(v("count"), Some((Op::Add, 3.0)));
    assert_eq!(v("totalTime"), Some((Op::Add, 2.5)));
    assert_eq!(v("totalOfSquares"), Some((Op::Add, 4.25)));
    assert_eq!(v("max"), Some((Op::Max, 2.0)));
    assert!(r.measurements().is_empty());
    // A single zero-length record: count is sent, the zero totals are not, max 0 is.
    t.record(Duration::ZERO);
    let ms = r.measurements();
    let stats: Vec<_> = ms.iter().map(|m| m.id.tag("statistic").unwrap()).collect();
    assert_eq!(stats.len(), 2, "{stats:?}");
    assert!(stats.contains(&"count") && stats.contains(&"max"));
}

#[test]
fn timer_uses_the_registry_clock() {
    let (clock, r) = manual();
    let t = r.timer("t", &[]);
    let out = t.time(|| {
        clock.advance(Duration::from_millis(250));
        7
    });
    assert_eq!(out, 7);
    {
        let sw = t.stopwatch();
        clock.advance(Duration::from_millis(50));
        assert_eq!(sw.elapsed(), Duration::from_millis(50));
    }
    assert_eq!(t.count(), 2);
    assert_eq!(t.total_time(), Duration::from_millis(300));
    let sw = t.stopwatch();
    clock.advance(Duration::from_millis(1));
    assert_eq!(sw.stop(), Duration::from_millis(1));
    assert_eq!(t.count(), 3);
}

#[test]
fn stopwatch_records_when_the_timed_code_panics() {
    let (clock, r) = manual();
    let t = r.timer("t", &[]);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        t.time(|| {
            clock.advance(Duration::from_secs(1));
            panic!("boom")
        })
    }));
    assert!(result.is_err());
    assert_eq!(t.count(), 1);
    assert_eq!(t.total_time(), Duration::from_secs(1));
}

#[test]
fn gauge_ttl_is_measured_from_the_last_set() {
    let (clock, r) = manual();
    let g = r.gauge("g", &[]);
    assert!(r.measurements().is_empty(), "never set: nothing");
    g.set(3.0);
    clock.advance(Duration::from_secs(899));
    assert_eq!(r.measurements()[0].value, 3.0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        r.measurements().len(),
        1,
        "exactly 15 minutes old: still sent"
    );
    clock.advance(Duration::from_millis(1));
    assert!(r.measurements().is_empty(), "older than the TTL");
    g.set(4.0);
    assert_eq!(r.measurements()[0].value, 4.0);
    g.set(f64::NAN);
    let stop = r.measurements();
    assert_eq!(
        stop.len(),
        1,
        "NaN once, for outputs that tell a sidecar to stop"
    );
    assert!(stop[0].value.is_nan());
    assert!(r.measurements().is_empty(), "then nothing");
    g.set(f64::INFINITY);
    assert!(r.measurements().is_empty());
    assert_eq!(r.measurements().len(), 0);
}

#[test]
fn max_gauge_resets_each_poll() {
    let (_, r) = manual();
    let g = r.max_gauge("m", &[]);
    g.set(1.0);
    g.set(f64::NAN);
    g.set(f64::INFINITY);
    g.set(-2.0);
    let ms = r.measurements();
    assert_eq!(ms.len(), 1);
    assert_eq!(
        (ms[0].id.to_string().as_str(), ms[0].op, ms[0].value),
        ("m:statistic=max", Op::Max, 1.0)
    );
    assert!(r.measurements().is_empty());
    g.set(-2.0);
    assert_eq!(r.measurements()[0].value, -2.0);
}

#[test]
fn percentile_timer_clamps_and_tags_buckets() {
    let (_, r) = manual();
    let t = r.percentile_timer("p", &[("k", "v")]);
    t.record(Duration::from_nanos(1)); // clamped to 10 ms
    t.record(Duration::from_millis(10));
    t.record(Duration::from_secs(3600)); // clamped to 60 s
    let ms = r.measurements();
    let pct: Vec<(String, f64)> = ms
        .iter()
        .filter(|m| m.id.tag("statistic") == Some("percentile"))
        .map(|m| (m.id.tag("percentile").unwrap().to_owned(), m.value))
        .collect();
    assert_eq!(pct.len(), 2, "{pct:?}");
    assert!(pct.contains(&("T0064".to_owned(), 2.0)));
    assert!(pct.contains(&("T009D".to_owned(), 1.0)));
    assert!(ms.iter().all(|m| m.id.tag("k") == Some("v")));
    let max = find(&ms, "p:k=v,statistic=max").unwrap();
    assert_eq!(
        max.value, 3600.0,
        "timer statistics use the unclamped value"
    );
}

#[test]
fn expiry_removes_only_unowned_idle_meters() {
    let (clock, r) = manual();
    let kept = r.counter("kept", &[]);
    r.counter("dropped", &[]).increment();
    r.gauge("gauge", &[]).set(1.0);
    assert_eq!(r.measurements().len(), 2);
    assert_eq!(r.len(), 3);
    clock.advance(Duration::from_secs(14 * 60));
    r.measurements();
    assert_eq!(r.len(), 3, "not idle long enough");
    clock.advance(Duration::from_secs(61));
    r.measurements();
    assert_eq!(r.len(), 1, "only the meter with a live handle is left");
    kept.increment();
    assert_eq!(r.measurements()[0].id.name(), "kept");
    // The id can be registered again, as a new meter.
    let again = r.counter("dropped", &[]);
    again.increment();
    assert_eq!(r.measurements().len(), 1);
    assert_eq!(r.len(), 2);
    // A handle taken from the registry keeps its meter alive past the TTL.
    clock.advance(Duration::from_secs(3600));
    r.measurements();
    again.increment();
    assert_eq!(
        find(&r.measurements(), "dropped:statistic=count")
            .unwrap()
            .value,
        1.0
    );
}

#[test]
fn many_meters_are_all_found_again() {
    let r = Registry::default();
    let n = 20_000;
    let handles: Vec<_> = (0..n)
        .map(|i| r.counter("many", &[("i", &i.to_string())]))
        .collect();
    assert_eq!(r.len(), n);
    for (i, h) in handles.iter().enumerate() {
        h.increment();
        let again = r.counter("many", &[("i", &i.to_string())]);
        again.increment();
        assert_eq!(h.count(), 2.0);
    }
    assert_eq!(r.len(), n);
    let ms = r.measurements();
    assert_eq!(ms.len(), n);
    assert!(ms.iter().all(|m| m.value == 2.0));
    // After the poll folded the levels together, every meter is still found, and new ones
    // can be added.
    for (i, h) in handles.iter().enumerate() {
        r.counter("many", &[("i", &i.to_string())]).increment();
        assert_eq!(h.count(), 1.0);
    }
    r.counter("many", &[("i", "new")]).increment();
    assert_eq!(r.len(), n + 1);
    assert_eq!(r.measurements().len(), n + 1);
}

#[test]
fn odd_input_never_panics() {
    let r = Registry::default();
    let weird = ["", " ", "é", "a\u{0}b", "🙂", &"x".repeat(10_000)];
    for name in weird {
        for key in weird {
            let tags = [(key, name), (key, "dup")];
            r.counter(name, &tags).add(f64::MIN_POSITIVE);
            r.timer(name, &[(key, "")]).record(Duration::MAX);
            r.distribution_summary(name, &[("", key)]).record(f64::MAX);
            r.gauge(name, &tags).set(f64::NEG_INFINITY);
            r.max_gauge(name, &tags).set(f64::MIN);
            r.percentile_timer(name, &tags).record(Duration::MAX);
            let p = r.percentile_distribution_summary(name, &tags);
            p.record(f64::MAX);
            p.record(-0.0);
            assert!(p.percentile(f64::NAN).is_nan());
            let _ = p.percentile(-5.0);
            let _ = r.percentile_timer(name, &tags).percentile(1e300);
        }
    }
    let ms = r.measurements();
    assert!(ms.iter().all(|m| m.value.is_finite()));
    let _ = Clock::wall_time(&**r.clock());
}

#[test]
fn meter_cap_refuses_new_ids_and_counts_refusals() {
    let r = Registry::builder()
        .config(spectator::Config {
            max_meters: 100,
            ..Default::default()
        })
        .build();
    let kept: Vec<_> = (0..100)
        .map(|i| r.counter("c", &[("i", &i.to_string())]))
        .collect();
    for i in 100..10_000 {
        r.counter("c", &[("i", &i.to_string())]).increment();
        r.timer("t", &[("i", &i.to_string())])
            .record(Duration::from_secs(1));
    }
    // Existing meters still work; refused ones report nothing; the refusals are counted.
    kept[7].increment();
    assert_eq!(r.counter("c", &[("i", "7")]).count(), 1.0);
    let ms = r.measurements();
    assert_eq!(find(&ms, "c:i=7,statistic=count").unwrap().value, 1.0);
    assert_eq!(
        find(&ms, "spectator.meters:id=refused,statistic=count")
            .unwrap()
            .value,
        19_800.0
    );
    assert_eq!(ms.len(), 2, "{ms:?}");
    assert_eq!(r.len(), 101);
}
