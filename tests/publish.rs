//! Publisher behaviour over real HTTP against the loopback aggregator: responses, retries,
//! outages, self-metrics, the background loop on a runtime and on its own thread, shutdown.

use std::time::Duration;

use spectator::testing::aggregator::{Aggregator, ReceivedMeasurement, Reply};
use spectator::PublishError as Error;
use spectator::{ManualClock, Registry};

fn registry(agg: &Aggregator, frequency: Duration) -> Registry {
    Registry::builder()
        .uri(&agg.uri())
        .frequency(frequency)
        .timeout(Duration::from_millis(300))
        .common_tags(&[("nf.app", "publish-test")])
        .build()
}

fn user(ms: &[ReceivedMeasurement]) -> Vec<&ReceivedMeasurement> {
    ms.iter()
        .filter(|m| !m.name().starts_with("spectator."))
        .collect()
}

fn self_metric(ms: &[ReceivedMeasurement], id: &str, error: Option<&str>) -> f64 {
    ms.iter()
        .filter(|m| {
            m.name() == "spectator.measurements"
                && m.tags.get("id").map(String::as_str) == Some(id)
                && m.tags.get("error").map(String::as_str) == error
        })
        .map(|m| m.value)
        .sum()
}

#[tokio::test]
async fn retries_then_succeeds_and_counts_sent() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_secs(10));
    let c = r.counter("test.requests", &[("status", "200")]);
    c.add(3.0);
    agg.script(Reply::Status(503), 1);
    agg.script(Reply::Status(429), 1);
    let report = r.publish().await;
    assert_eq!((report.sent, report.errors, report.pending), (1, 2, 0));
    assert_eq!(agg.requests().len(), 3);
    assert_eq!(agg.accepted_total("test.requests"), 3.0);
    // The self-metric for the first publish goes out with the second.
    agg.take_requests();
    r.publish().await;
    let accepted = agg.accepted();
    assert_eq!(self_metric(&accepted, "sent", None), 1.0);
    assert!(user(&accepted).is_empty());
}

#[tokio::test]
async fn partial_and_rejected_batches_are_dropped_and_counted() {
    let agg = Aggregator::start().unwrap();
    let r = Registry::builder()
        .uri(&agg.uri())
        .batch_size(2)
        .frequency(Duration::from_secs(10))
        .build();
    let counters: Vec<_> = (0..4)
        .map(|i| r.counter("test.items", &[("i", &i.to_string())]))
        .collect();
    for c in &counters {
        c.increment();
    }
    agg.script(Reply::Partial(1), 1);
    agg.script(Reply::Status(400), 1);
    let report = r.publish().await;
    assert_eq!(report.sent, 1);
    assert_eq!(report.dropped, 3);
    assert_eq!(report.dropped_validation, 3);
    agg.take_requests();
    r.publish().await;
    let accepted = agg.accepted();
    assert_eq!(self_metric(&accepted, "dropped", Some("validation")), 3.0);
    assert_eq!(self_metric(&accepted, "sent", None), 1.0);
}

#[tokio::test]
async fn strict_aggregator_rejects_short_names_with_400() {
    let agg = Aggregator::start().unwrap();
    agg.set_strict_lengths(true);
    let r = registry(&agg, Duration::from_secs(10));
    let c = r.counter("a", &[("x", "y")]);
    c.increment();
    let report = r.publish().await;
    assert_eq!(report.dropped_validation, 1, "{report:?}");
    let req = &agg.requests()[0];
    assert_eq!(req.status, Some(400));
    assert!(!req.violations.is_empty());
}

#[tokio::test]
async fn lenient_aggregator_records_short_names_and_reports_them() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_secs(10));
    let c = r.counter("a", &[("x", "y")]);
    c.increment();
    let report = r.publish().await;
    assert_eq!(report.sent, 1);
    let req = &agg.requests()[0];
    assert_eq!(req.status, Some(200));
    assert_eq!(req.violations.len(), 2, "{:?}", req.violations);
}

#[tokio::test]
async fn outage_then_recovery_loses_nothing() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_secs(10));
    let c = r.counter("test.outage", &[]);
    let g = r.gauge("test.level", &[]);
    let mut recorded = 0.0;
    // Two publishes during an outage: hangs past the timeout, resets, 500s.
    agg.script(Reply::Hang(Duration::from_secs(2)), 1);
    agg.script(Reply::Reset, 1);
    agg.script(Reply::Status(500), 4);
    for i in 0..2 {
        c.add(10.0 + i as f64);
        recorded += 10.0 + i as f64;
        g.set(i as f64);
        let report = r.publish().await;
        assert_eq!(report.sent, 0, "{report:?}");
        assert!(report.pending > 0, "{report:?}");
        assert_eq!(report.dropped, 0);
    }
    // Recovery: what was kept goes out first, then the new values.
    c.add(1.0);
    recorded += 1.0;
    let report = r.publish().await;
    assert_eq!(report.pending, 0, "{report:?}");
    assert_eq!(agg.accepted_total("test.outage"), recorded);
    // A transport failure and a status failure were both retried.
    let statuses: Vec<Option<u16>> = agg.requests().iter().map(|q| q.status).collect();
    assert_eq!(
        &statuses[..6],
        &[None, None, Some(500), Some(500), Some(500), Some(500)]
    );
}

#[tokio::test]
async fn publish_without_uri_is_a_no_op_and_start_is_an_error() {
    let r = Registry::default();
    let c = r.counter("test.local", &[]);
    c.increment();
    let report = r.publish().await;
    assert_eq!(report.sent, 0);
    assert!(matches!(r.start(), Err(Error::NoUri)));
    // Nothing was polled away.
    assert_eq!(c.count(), 1.0);
}

#[tokio::test]
async fn start_twice_is_an_error_until_stopped() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_secs(60));
    let p = r.start().unwrap();
    assert!(matches!(r.start(), Err(Error::AlreadyStarted)));
    p.shutdown().await;
    let p2 = r.start().unwrap();
    p2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_on_the_callers_runtime_and_graceful_shutdown() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_millis(200));
    let c = r.counter("test.loop", &[]);
    let p = r.start().unwrap();
    c.add(5.0);
    assert!(
        agg.wait_for_requests_async(1, Duration::from_secs(5)).await,
        "the loop published"
    );
    // Recorded after the last loop publish: only the final flush can send it.
    c.add(7.0);
    let report = p.shutdown().await;
    assert!(report.sent >= 1, "{report:?}");
    assert_eq!(agg.accepted_total("test.loop"), 12.0);
    assert_eq!(p.shutdown().await, Default::default(), "idempotent");
}

#[test]
fn loop_on_its_own_thread_from_a_plain_program() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_millis(200));
    let c = r.counter("test.thread", &[]);
    let p = r.start().unwrap();
    c.add(2.0);
    assert!(agg.wait_for_requests(1, Duration::from_secs(5)));
    c.add(3.0);
    let report = p.stop();
    assert!(report.sent >= 1, "{report:?}");
    assert_eq!(agg.accepted_total("test.thread"), 5.0);
}

#[tokio::test]
async fn blocking_stop_inside_a_current_thread_runtime_does_not_deadlock() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_secs(60));
    let c = r.counter("test.stop_in_runtime", &[]);
    let p = r.start().unwrap();
    c.add(4.0);
    // The loop task lives on this very (single) thread, which stop() now blocks.
    let report = p.stop();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(agg.accepted_total("test.stop_in_runtime"), 4.0);
}

#[tokio::test]
async fn dropping_the_publisher_flushes_in_the_background() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg, Duration::from_secs(60));
    let c = r.counter("test.drop", &[]);
    let p = r.start().unwrap();
    c.add(1.0);
    drop(p);
    assert!(agg.wait_for_requests_async(1, Duration::from_secs(5)).await);
    assert_eq!(agg.accepted_total("test.drop"), 1.0);
}

#[test]
fn manual_clock_registry_publishes_from_a_plain_thread_runtime() {
    let agg = Aggregator::start().unwrap();
    let r = Registry::builder()
        .uri(&agg.uri())
        .clock(ManualClock::new(1_600_000_000_000, 0))
        .frequency(Duration::from_secs(5))
        .build();
    let t = r.timer("test.timer", &[]);
    t.record(Duration::from_millis(1500));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(r.publish());
    assert_eq!(report.sent, 4);
    let accepted = agg.accepted();
    let time: f64 = accepted
        .iter()
        .filter(|m| m.tags.get("statistic").map(String::as_str) == Some("totalTime"))
        .map(|m| m.value)
        .sum();
    assert_eq!(time, 1.5);
}
