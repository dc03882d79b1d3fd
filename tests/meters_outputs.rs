//! The newer meters through both outputs: an age gauge goes to Atlas as `statistic=gauge`
//! seconds and to spectatord as `A:` lines (the time of the last set, in seconds since the
//! epoch), so that spectatord keeps the age growing by itself; the other new kinds go as
//! ordinary lines.

use spectator::testing::aggregator::Aggregator;
use spectator::{ManualClock, Registry};
use std::sync::Arc;
use std::time::Duration;

const T0: u64 = 1_700_000_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn lines_registry(clock: &ManualClock) -> Registry {
    Registry::builder()
        .output_location("memory")
        .clock(clock.clone())
        .build()
}

/// The user lines (no self-metrics), sorted.
fn user_lines(r: &Registry) -> Vec<String> {
    let mut lines: Vec<String> = r
        .take_written_lines()
        .into_iter()
        .filter(|l| !l.contains(":spectator."))
        .collect();
    lines.sort();
    lines
}

#[test]
fn age_gauge_is_an_a_line_with_the_set_time_at_every_step() {
    let rt = runtime();
    let clock = ManualClock::new(T0, 0);
    let r = lines_registry(&clock);
    let g = r.age_gauge("job.timeSinceLastSuccess", &[("job", "nightly")]);
    rt.block_on(r.publish());
    assert!(user_lines(&r).is_empty(), "nothing before the first set");

    clock.advance(Duration::from_millis(2_500));
    g.set_now();
    clock.advance(Duration::from_secs(60));
    rt.block_on(r.publish());
    let expected = ["A:job.timeSinceLastSuccess,job=nightly,statistic=gauge:1700000002.5"];
    assert_eq!(user_lines(&r), expected, "no g: line for it");

    // Sent again at each step (idempotent for spectatord), unchanged until the next set.
    clock.advance(Duration::from_secs(60));
    rt.block_on(r.publish());
    assert_eq!(user_lines(&r), expected);

    g.set(T0 + 100_000);
    rt.block_on(r.publish());
    assert_eq!(
        user_lines(&r),
        ["A:job.timeSinceLastSuccess,job=nightly,statistic=gauge:1700000100"]
    );

    // A set in the future is sent as the poll's time (age 0), never ahead of it.
    g.set(T0 + 10_000_000);
    rt.block_on(r.publish());
    let now_s = (T0 + 122_500) as f64 / 1000.0;
    assert_eq!(
        user_lines(&r),
        [format!(
            "A:job.timeSinceLastSuccess,job=nightly,statistic=gauge:{now_s}"
        )]
    );

    // The epoch itself: spectatord reads 0 as "now", so 1 ms after it is sent.
    g.set(0);
    rt.block_on(r.publish());
    assert_eq!(
        user_lines(&r),
        ["A:job.timeSinceLastSuccess,job=nightly,statistic=gauge:0.001"]
    );
}

#[test]
fn other_new_kinds_are_ordinary_lines() {
    let rt = runtime();
    let clock = ManualClock::new(T0, 0);
    let r = Registry::builder()
        .output_location("memory")
        .clock(clock.clone())
        .common_tags(&[("zone", "a")])
        .build();
    let m = r.monotonic_counter("disk.reads", &[]);
    m.set(10.0);
    let ltt = r.long_task_timer("job.run", &[]);
    let task = ltt.start();
    let source = Arc::new(7.0f64);
    r.polled_gauge("pool.size", &[], &source, |v| *v);
    r.age_gauge("job.age", &[]).set_now();
    r.gauge("plain", &[]).set(1.0);
    clock.advance(Duration::from_secs(3));
    m.set(15.0);
    rt.block_on(r.publish());
    r.take_written_lines();
    // The first poll took 15 as the monotonic counter's base.
    m.set(21.0);
    rt.block_on(r.publish());
    let lines = user_lines(&r);
    assert_eq!(
        lines,
        [
            "A:job.age,statistic=gauge,zone=a:1700000000",
            "c:disk.reads,statistic=count,zone=a:6",
            "g:job.run,statistic=activeTasks,zone=a:1",
            "g:job.run,statistic=duration,zone=a:3",
            "g:plain,statistic=gauge,zone=a:1",
            "g:pool.size,statistic=gauge,zone=a:7",
        ]
    );
    drop(task);
}

#[test]
fn gauge_with_ttl_is_a_g_line_with_the_seconds_left() {
    let rt = runtime();
    let clock = ManualClock::new(T0, 0);
    let r = lines_registry(&clock);
    let g = r.gauge_with_ttl("queue.size", &[], Duration::from_secs(30));
    r.gauge("plain", &[]).set(2.0);
    g.set(4.0);
    clock.advance(Duration::from_secs(10));
    rt.block_on(r.publish());
    assert_eq!(
        user_lines(&r),
        [
            "g,20:queue.size,statistic=gauge:4",
            "g:plain,statistic=gauge:2"
        ]
    );
    clock.advance(Duration::from_millis(19_500));
    rt.block_on(r.publish());
    assert_eq!(
        user_lines(&r),
        [
            "g,1:queue.size,statistic=gauge:4",
            "g:plain,statistic=gauge:2"
        ]
    );
    clock.advance(Duration::from_secs(1));
    rt.block_on(r.publish());
    assert_eq!(
        user_lines(&r),
        ["g:plain,statistic=gauge:2"],
        "stale: not sent"
    );
    g.set(5.0);
    rt.block_on(r.publish());
    assert_eq!(
        user_lines(&r),
        [
            "g,30:queue.size,statistic=gauge:5",
            "g:plain,statistic=gauge:2"
        ]
    );
}

#[test]
fn age_gauge_reaches_atlas_as_gauge_seconds() {
    let rt = runtime();
    let agg = Aggregator::start().unwrap();
    let clock = ManualClock::new(T0, 0);
    let r = Registry::builder()
        .uri(&agg.uri())
        .timeout(Duration::from_secs(5))
        .clock(clock.clone())
        .build();
    r.age_gauge("job.age", &[]).set_now();
    let _task = r.long_task_timer("job.run", &[]).start();
    clock.advance(Duration::from_secs(42));
    let report = rt.block_on(r.publish());
    assert_eq!(report.dropped, 0, "{report:?}");
    let accepted = agg.accepted();
    let get = |name: &str, stat: &str| {
        accepted
            .iter()
            .find(|m| m.name() == name && m.tags.get("statistic").map(String::as_str) == Some(stat))
            .map(|m| (m.op, m.value))
    };
    assert_eq!(get("job.age", "gauge"), Some((10, 42.0)));
    assert_eq!(get("job.run", "activeTasks"), Some((10, 1.0)));
    assert_eq!(get("job.run", "duration"), Some((10, 42.0)));
}
