//! `spectator::global()` configured from the environment. Each scenario runs in a child
//! process (this test binary re-run on one `child_*` test) so that the process environment and
//! the once-only global registry are fresh, and no test mutates the environment of another.

use std::time::Duration;

use spectator::testing::aggregator::Aggregator;

mod support;

use support::child::{is_child, run_child};

#[test]
fn global_auto_starts_from_the_environment() {
    let agg = Aggregator::start().unwrap();
    let (ok, out) = run_child(
        "child_auto_start",
        &[
            ("SPECTATOR_URI", &agg.uri()),
            ("SPECTATOR_FREQUENCY", "0.2"),
            ("SPECTATOR_COMMON_TAGS", "team=metrics"),
            ("NETFLIX_APP", "globaltest"),
            ("EC2_INSTANCE_ID", "i-123"),
        ],
    );
    assert!(ok, "{out}");
    let ms = agg.accepted();
    let total: f64 = ms
        .iter()
        .filter(|m| m.name() == "global.requests")
        .map(|m| {
            assert_eq!(m.tags["nf.app"], "globaltest");
            assert_eq!(m.tags["nf.node"], "i-123");
            assert_eq!(m.tags["team"], "metrics");
            m.value
        })
        .sum();
    assert_eq!(total, 5.0, "{ms:?}");
}

#[test]
fn child_auto_start() {
    if !is_child() {
        return;
    }
    let c = spectator::global().counter("global.requests", &[]);
    c.add(2.0);
    assert_eq!(
        spectator::global().config().frequency,
        Duration::from_millis(200)
    );
    // Let the loop publish at least once, then record more for the final flush.
    std::thread::sleep(Duration::from_millis(600));
    c.add(3.0);
    let report = spectator::stop_global().expect("auto-started");
    assert!(report.sent >= 1, "{report:?}");
    assert!(spectator::global().start().map(|p| p.stop()).is_ok());
}

#[test]
fn auto_start_can_be_disabled() {
    let agg = Aggregator::start().unwrap();
    let (ok, out) = run_child(
        "child_disabled",
        &[
            ("SPECTATOR_URI", &agg.uri()),
            ("SPECTATOR_DISABLE_AUTO_START_GLOBAL", "1"),
        ],
    );
    assert!(ok, "{out}");
    // Only the explicitly started publisher's final flush arrived.
    let ms = agg.accepted();
    assert_eq!(
        ms.iter()
            .filter(|m| m.name() == "global.manual")
            .map(|m| m.value)
            .sum::<f64>(),
        1.0
    );
}

#[test]
fn child_disabled() {
    if !is_child() {
        return;
    }
    let g = spectator::global();
    assert!(spectator::stop_global().is_none(), "not auto-started");
    g.counter("global.manual", &[]).increment();
    let p = g.start().expect("manual start");
    let report = p.stop();
    assert_eq!(report.sent, 1, "{report:?}");
}

#[test]
fn bad_environment_falls_back_to_defaults_without_panicking() {
    let (ok, out) = run_child(
        "child_bad_env",
        &[
            ("SPECTATOR_URI", "http://127.0.0.1:9/api/v4/update"),
            ("SPECTATOR_FREQUENCY", "often"),
        ],
    );
    assert!(ok, "{out}");
}

#[test]
fn child_bad_env() {
    if !is_child() {
        return;
    }
    let err = spectator::Config::from_env().unwrap_err();
    assert_eq!(err.variable(), "SPECTATOR_FREQUENCY");
    assert_eq!(err.value(), "often");
    let g = spectator::global();
    assert_eq!(g.config(), &spectator::Config::default());
    assert!(spectator::stop_global().is_none());
    g.counter("still.records", &[]).increment();
    assert_eq!(g.measurements().len(), 1);
}

#[test]
fn every_variable_from_the_process_environment() {
    let (ok, out) = run_child(
        "child_every_variable",
        &[
            ("SPECTATOR_URI", "https://atlas.example.com/api/v4/update"),
            ("SPECTATOR_FREQUENCY", "10"),
            ("SPECTATOR_BATCH_SIZE", "1234"),
            ("SPECTATOR_TIMEOUT", "0.5"),
            ("SPECTATOR_COMMON_TAGS", "a=1,b=2"),
            ("SPECTATOR_MAX_METERS", "5000"),
            ("NETFLIX_APP", "app"),
            ("NETFLIX_CLUSTER", "app-main"),
            ("NETFLIX_AUTO_SCALE_GROUP", "app-main-v001"),
            ("NETFLIX_STACK", "main"),
            ("EC2_REGION", "us-east-1"),
            ("EC2_AVAILABILITY_ZONE", "us-east-1c"),
            ("NETFLIX_INSTANCE_ID", "i-nf"),
            ("EC2_INSTANCE_ID", "i-ec2"),
            ("NETFLIX_ACCOUNT_ID", "123"),
            ("NETFLIX_CONTAINER_NAME", ""),
            ("TITUS_CONTAINER_NAME", "titus"),
            ("NETFLIX_PROCESS_NAME", "proc"),
        ],
    );
    assert!(ok, "{out}");
}

#[test]
fn child_every_variable() {
    if !is_child() {
        return;
    }
    let c = spectator::Config::from_env().unwrap();
    assert_eq!(
        c.uri.as_deref(),
        Some("https://atlas.example.com/api/v4/update")
    );
    assert_eq!(c.frequency, Duration::from_secs(10));
    assert_eq!(c.batch_size, 1234);
    assert_eq!(c.timeout, Duration::from_millis(500));
    assert_eq!(c.max_meters, 5000);
    let tags: Vec<String> = c
        .common_tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(
        tags,
        [
            "nf.app=app",
            "nf.cluster=app-main",
            "nf.asg=app-main-v001",
            "nf.stack=main",
            "nf.region=us-east-1",
            "nf.zone=us-east-1c",
            "nf.node=i-nf",
            "nf.account=123",
            "nf.container=titus",
            "nf.process=proc",
            "a=1",
            "b=2",
        ]
    );
}
