//! The `metrics` facade into a registry (`spectator::metrics_rs`): every mapping, checked
//! through what a poll (`registry.measurements()`) reports on a `ManualClock` registry.

use metrics::{Key, Label, Recorder, Unit};
use spectator::metrics_rs::SpectatorRecorder;
use spectator::{Config, ManualClock, Op, Registry};
use std::collections::BTreeMap;
use std::time::Duration;

fn registry() -> (Registry, ManualClock) {
    let clock = ManualClock::new(1_600_000_000_000, 0);
    (Registry::builder().clock(clock.clone()).build(), clock)
}

/// One poll as `id => (op, value)`, ids written `name:k=v,...`.
fn poll(registry: &Registry) -> BTreeMap<String, (Op, f64)> {
    let mut out = BTreeMap::new();
    for m in registry.measurements() {
        let previous = out.insert(m.id.to_string(), (m.op, m.value));
        assert!(previous.is_none(), "{} reported twice", m.id);
    }
    out
}

fn value(polled: &BTreeMap<String, (Op, f64)>, id: &str) -> Option<f64> {
    polled.get(id).map(|(_, v)| *v)
}

/// Seconds computed from nanoseconds: equal up to rounding.
fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|a| (a - expected).abs() <= 1e-12 * expected.abs().max(1.0))
}

#[test]
fn counter_increment_adds_and_reports_the_step_delta() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("server.numRequests", "status" => "200").increment(3);
        let c = metrics::counter!("server.numRequests", "status" => "200");
        c.increment(4);
        c.increment(0);
    });
    let polled = poll(&registry);
    assert_eq!(
        polled.get("server.numRequests:statistic=count,status=200"),
        Some(&(Op::Add, 7.0))
    );
    assert_eq!(polled.len(), 1);
    assert!(poll(&registry).is_empty(), "deltas: nothing new since");
}

#[test]
fn counter_absolute_reports_increases_like_a_monotonic_counter() {
    let (registry, clock) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    let id = "bytes.read:statistic=count";
    let c = metrics::with_local_recorder(&recorder, || metrics::counter!("bytes.read"));
    let step = |v: u64| {
        c.absolute(v);
        clock.advance(Duration::from_secs(5));
        value(&poll(&registry), id)
    };
    assert_eq!(step(100), None, "nothing at the first sample");
    assert_eq!(step(150), Some(50.0));
    assert_eq!(step(150), None, "no increase, nothing sent");
    assert_eq!(step(20), None, "a decrease is a restart: the new base");
    assert_eq!(step(27), Some(7.0));
    // `increment` and `absolute` on one key add up.
    c.increment(2);
    assert_eq!(step(30), Some(5.0));
    // Polled far past the meter TTL with no change: the counter keeps its base.
    clock.advance(Duration::from_secs(3600));
    assert!(poll(&registry).is_empty());
    assert_eq!(step(31), Some(1.0));
}

/// Runs `f` with `recorder` on a thread of its own, which ends before this returns: its
/// cached handles are gone, so only the registry refers to the meters `f` touched.
fn on_a_thread(recorder: &SpectatorRecorder, f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        // An explicit join waits for the thread to have exited, its thread-local cache
        // destroyed too (the end of the scope alone only waits for `f` to return).
        let _ = s.spawn(|| metrics::with_local_recorder(recorder, f)).join();
    });
}

#[test]
fn without_handles_idle_counters_expire_but_absolute_counters_and_gauges_stay() {
    let (registry, clock) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    on_a_thread(&recorder, || {
        metrics::counter!("idle.count").increment(1);
        metrics::counter!("source.total").absolute(100);
        metrics::gauge!("pool.size").increment(4.0);
    });
    let polled = poll(&registry);
    assert_eq!(value(&polled, "idle.count:statistic=count"), Some(1.0));
    assert_eq!(value(&polled, "source.total:statistic=count"), None);
    assert_eq!(registry.len(), 3);
    for _ in 0..5 {
        clock.advance(Duration::from_secs(15 * 60));
        let polled = poll(&registry);
        assert_eq!(value(&polled, "pool.size:statistic=gauge"), Some(4.0));
        assert_eq!(polled.len(), 1, "{polled:?}");
    }
    // The idle counter went with the meter TTL; the others are still registered.
    assert_eq!(registry.len(), 2);
    on_a_thread(&recorder, || {
        metrics::counter!("source.total").absolute(130)
    });
    assert_eq!(
        value(&poll(&registry), "source.total:statistic=count"),
        Some(30.0),
        "the base of an hour ago was kept"
    );
}

#[test]
fn gauge_takes_set_increment_decrement_and_keeps_reporting_while_it_stands() {
    let (registry, clock) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    let id = "server.inFlight:statistic=gauge";
    metrics::with_local_recorder(&recorder, || {
        let g = metrics::gauge!("server.inFlight");
        assert!(
            poll(&registry).is_empty(),
            "nothing before the first update"
        );
        g.increment(2.0); // starts at 0, as metrics gauges do
        g.increment(1.5);
        assert_eq!(poll(&registry).get(id), Some(&(Op::Max, 3.5)));
        g.decrement(5.0);
        assert_eq!(value(&poll(&registry), id), Some(-1.5));
        g.set(10.0);
        metrics::gauge!("server.inFlight").decrement(1);
    });
    assert_eq!(value(&poll(&registry), id), Some(9.0));
    // No update for an hour, no handle kept by this test: the value still stands.
    for _ in 0..4 {
        clock.advance(Duration::from_secs(15 * 60));
        assert_eq!(value(&poll(&registry), id), Some(9.0));
    }
    // NaN stops it: reported once (spectatord's signal to stop), then nothing.
    metrics::with_local_recorder(&recorder, || {
        metrics::gauge!("server.inFlight").set(f64::NAN)
    });
    assert!(value(&poll(&registry), id).is_some_and(f64::is_nan));
    assert!(poll(&registry).is_empty());
    metrics::with_local_recorder(&recorder, || metrics::gauge!("server.inFlight").set(1.0));
    assert_eq!(value(&poll(&registry), id), Some(1.0));
}

#[test]
fn histogram_is_a_distribution_summary_by_default() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        let h = metrics::histogram!("server.responseSize", "route" => "/a");
        h.record(100.0);
        h.record(300);
        h.record(-5.0); // ignored, as by a native summary
        h.record(f64::NAN); // ignored
                            // `describe_histogram!` with a unit that is not a time changes nothing.
        metrics::describe_histogram!("server.responseSize", Unit::Bytes, "response size");
        metrics::histogram!("server.responseSize", "route" => "/a").record(0.0);
    });
    let polled = poll(&registry);
    let stat = |s: &str| polled.get(&format!("server.responseSize:route=/a,statistic={s}"));
    assert_eq!(stat("count"), Some(&(Op::Add, 3.0)));
    assert_eq!(stat("totalAmount"), Some(&(Op::Add, 400.0)));
    assert_eq!(stat("totalOfSquares"), Some(&(Op::Add, 100_000.0)));
    assert_eq!(stat("max"), Some(&(Op::Max, 300.0)));
    assert_eq!(polled.len(), 4);
}

#[test]
fn histogram_described_with_a_time_unit_first_is_a_timer_in_seconds() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    let cases = [
        ("lat.s", Unit::Seconds, 0.25),
        ("lat.ms", Unit::Milliseconds, 250.0),
        ("lat.us", Unit::Microseconds, 250_000.0),
        ("lat.ns", Unit::Nanoseconds, 250_000_000.0),
    ];
    metrics::with_local_recorder(&recorder, || {
        for (name, unit, v) in cases {
            metrics::describe_histogram!(name, unit, "latency");
            let h = metrics::histogram!(name, "route" => "/a");
            h.record(v);
            h.record(v * 3.0);
            h.record(-v); // a negative duration is not recorded
        }
        // The macro form that describes at each call.
        metrics::histogram!(unit: Unit::Milliseconds, description: "latency", "lat.inline")
            .record(1500);
    });
    let polled = poll(&registry);
    for (name, ..) in cases {
        let stat = |s: &str| value(&polled, &format!("{name}:route=/a,statistic={s}"));
        assert_eq!(stat("count"), Some(2.0), "{name}");
        assert!(close(stat("totalTime"), 1.0), "{name}: seconds");
        assert!(close(stat("totalOfSquares"), 0.625), "{name}");
        assert!(close(stat("max"), 0.75), "{name}");
        assert_eq!(stat("totalAmount"), None, "{name} is no summary");
    }
    assert!(close(value(&polled, "lat.inline:statistic=totalTime"), 1.5));
}

#[test]
fn histogram_described_after_its_first_use_stays_a_summary_for_every_label_set() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        let early = metrics::histogram!("job.duration", "job" => "a");
        early.record(250.0);
        metrics::describe_histogram!("job.duration", Unit::Milliseconds, "too late");
        early.record(250.0);
        // New registrations of the name, with the same or other labels, keep the first type.
        metrics::histogram!("job.duration", "job" => "a").record(250.0);
        metrics::histogram!("job.duration", "job" => "b").record(100.0);
        // A name described first keeps the unit it was described with.
        metrics::describe_histogram!("job.wait", Unit::Seconds, "wait");
        metrics::describe_histogram!("job.wait", Unit::Milliseconds, "described again");
        metrics::histogram!("job.wait").record(2.0);
    });
    let polled = poll(&registry);
    assert_eq!(
        value(&polled, "job.duration:job=a,statistic=totalAmount"),
        Some(750.0)
    );
    assert_eq!(
        value(&polled, "job.duration:job=b,statistic=totalAmount"),
        Some(100.0)
    );
    assert!(!polled
        .keys()
        .any(|k| k.contains("totalTime") && k.starts_with("job.duration")));
    assert!(close(value(&polled, "job.wait:statistic=totalTime"), 2.0));
}

#[test]
fn chosen_histograms_become_percentile_meters() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::builder(registry.clone())
        .percentiles("http.")
        .percentiles("db.size")
        .build();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_histogram!("http.latency", Unit::Milliseconds, "latency");
        metrics::histogram!("http.latency").record(30.0);
        metrics::histogram!("http.bodySize").record(512.0);
        metrics::histogram!("db.sizeOfRows").record(7.0);
        metrics::histogram!("db.rows").record(7.0);
    });
    let polled = poll(&registry);
    let percentiles = |name: &str| -> Vec<String> {
        polled
            .keys()
            .filter(|k| k.starts_with(&format!("{name}:")) && k.contains("statistic=percentile"))
            .cloned()
            .collect()
    };
    let timer = percentiles("http.latency");
    assert_eq!(timer.len(), 1, "{timer:?}");
    assert!(timer[0].contains("percentile=T"), "{timer:?}");
    assert!(close(
        value(&polled, "http.latency:statistic=totalTime"),
        0.03
    ));
    let summary = percentiles("http.bodySize");
    assert_eq!(summary.len(), 1);
    assert!(summary[0].contains("percentile=D"), "{summary:?}");
    assert_eq!(percentiles("db.sizeOfRows").len(), 1);
    assert!(percentiles("db.rows").is_empty(), "not chosen");
    assert_eq!(value(&polled, "db.rows:statistic=totalAmount"), Some(7.0));
}

#[test]
fn labels_in_any_order_are_one_meter() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("c.ordered", "a" => "1", "b" => "2").increment(1);
        metrics::counter!("c.ordered", "b" => "2", "a" => "1").increment(2);
        let dynamic = vec![Label::new("b", "2".to_string()), Label::new("a", "1")];
        metrics::counter!("c.ordered", dynamic).increment(4);
        metrics::gauge!("g.ordered", "x" => "1", "y" => "2").set(1.0);
        metrics::gauge!("g.ordered", "y" => "2", "x" => "1").increment(1.0);
        metrics::histogram!("h.ordered", "x" => "1", "y" => "2").record(1.0);
        metrics::histogram!("h.ordered", "y" => "2", "x" => "1").record(2.0);
    });
    assert_eq!(registry.len(), 3);
    let polled = poll(&registry);
    assert_eq!(
        value(&polled, "c.ordered:a=1,b=2,statistic=count"),
        Some(7.0)
    );
    assert_eq!(
        value(&polled, "g.ordered:statistic=gauge,x=1,y=2"),
        Some(2.0)
    );
    assert_eq!(
        value(&polled, "h.ordered:statistic=count,x=1,y=2"),
        Some(2.0)
    );
}

#[test]
fn many_labels_and_repeated_label_keys() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    let labels: Vec<(String, String)> = (0..12)
        .map(|i| (format!("k{i:02}"), format!("v{i}")))
        .collect();
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("c.wide", &labels).increment(1);
        let mut reversed = labels.clone();
        reversed.reverse();
        metrics::counter!("c.wide", &reversed).increment(1);
        // A repeated key keeps its last value, as for native ids.
        metrics::counter!("c.repeated", "k" => "first", "k" => "last").increment(1);
    });
    let polled = poll(&registry);
    let wide: Vec<_> = polled.keys().filter(|k| k.starts_with("c.wide:")).collect();
    assert_eq!(wide.len(), 1);
    assert!(wide[0].contains("k11=v11"));
    assert_eq!(polled[wide[0]].1, 2.0);
    assert_eq!(
        value(&polled, "c.repeated:k=last,statistic=count"),
        Some(1.0)
    );
}

#[test]
fn invalid_characters_are_sanitised_on_the_way_out() {
    let clock = ManualClock::new(1_600_000_000_000, 0);
    let registry = Registry::builder()
        .clock(clock)
        .output_location("memory")
        .build();
    let recorder = SpectatorRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("http server/requests", "status code" => "2xx ok").increment(2);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(registry.publish());
    assert_eq!(
        registry.take_written_lines(),
        ["c:http_server_requests,statistic=count,status_code=2xx_ok:2"]
    );
}

#[test]
fn registrations_go_through_the_meter_cap() {
    let clock = ManualClock::new(1_600_000_000_000, 0);
    let config = Config {
        max_meters: 2,
        ..Config::default()
    };
    let registry = Registry::builder().config(config).clock(clock).build();
    let recorder = SpectatorRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        for i in 0..4 {
            metrics::counter!("capped", "i" => i.to_string()).increment(1);
        }
    });
    let polled = poll(&registry);
    let capped = polled.keys().filter(|k| k.starts_with("capped:")).count();
    assert_eq!(capped, 2, "{polled:?}");
    assert_eq!(
        value(&polled, "spectator.meters:id=refused,statistic=count"),
        Some(2.0)
    );
}

#[test]
fn handles_from_every_thread_and_every_registration_share_one_meter() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    let key = Key::from_parts("jobs.done", vec![Label::new("queue", "q1")]);
    let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
    let held = recorder.register_counter(&key, &meta);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                metrics::with_local_recorder(&recorder, || {
                    for _ in 0..1000 {
                        metrics::counter!("jobs.done", "queue" => "q1").increment(1);
                    }
                });
            });
        }
    });
    held.increment(5);
    recorder.register_counter(&key, &meta).increment(5);
    assert_eq!(
        value(&poll(&registry), "jobs.done:queue=q1,statistic=count"),
        Some(4010.0)
    );
}

#[test]
fn one_counter_incremented_by_two_threads_while_polled_loses_nothing() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    let key = Key::from_parts("jobs.bytes", vec![]);
    let meta = metrics::Metadata::new(module_path!(), metrics::Level::INFO, None);
    let counter = recorder.register_counter(&key, &meta);
    const N: u64 = 200_000;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut polled = 0.0;
    std::thread::scope(|s| {
        for amount in [1, 3] {
            let (counter, done) = (&counter, &done);
            s.spawn(move || {
                for _ in 0..N {
                    counter.increment(amount);
                }
                done.fetch_add(1, std::sync::atomic::Ordering::Release);
            });
        }
        // Polls race the increments (and the switch to cells once the threads collide).
        while done.load(std::sync::atomic::Ordering::Acquire) < 2 {
            polled += value(&poll(&registry), "jobs.bytes:statistic=count").unwrap_or(0.0);
            std::thread::yield_now();
        }
    });
    polled += value(&poll(&registry), "jobs.bytes:statistic=count").unwrap_or(0.0);
    assert_eq!(polled, (4 * N) as f64);
}

#[test]
fn recorders_over_different_registries_stay_apart_on_one_thread() {
    let (a, _) = registry();
    let (b, _) = registry();
    let (ra, rb) = (
        SpectatorRecorder::new(a.clone()),
        SpectatorRecorder::new(b.clone()),
    );
    for _ in 0..3 {
        metrics::with_local_recorder(&ra, || metrics::counter!("same.key").increment(1));
        metrics::with_local_recorder(&rb, || metrics::counter!("same.key").increment(10));
    }
    assert_eq!(value(&poll(&a), "same.key:statistic=count"), Some(3.0));
    assert_eq!(value(&poll(&b), "same.key:statistic=count"), Some(30.0));
}

#[test]
fn more_keys_than_a_thread_caches_still_record_correctly() {
    let (registry, _) = registry();
    let recorder = SpectatorRecorder::new(registry.clone());
    metrics::with_local_recorder(&recorder, || {
        for round in 0..2 {
            for i in 0..3000 {
                metrics::counter!("many", "i" => i.to_string()).increment(1 + round);
            }
        }
    });
    let polled = poll(&registry);
    assert_eq!(polled.len(), 3000);
    assert!(polled.values().all(|(_, v)| *v == 3.0));
}

#[test]
fn install_sets_the_global_recorder_over_the_global_registry() {
    spectator::metrics_rs::install().expect("first install");
    assert!(
        spectator::metrics_rs::install().is_err(),
        "a second install is refused"
    );
    // Another thread, no local recorder: the global one records into `spectator::global()`.
    std::thread::spawn(|| metrics::counter!("facade.installed", "t" => "1").increment(3))
        .join()
        .unwrap();
    let polled = poll(spectator::global());
    assert_eq!(
        value(&polled, "facade.installed:statistic=count,t=1"),
        Some(3.0)
    );
}
