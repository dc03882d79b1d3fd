//! Every conformance vector (tests/conformance/*.json) replayed over real HTTP against the
//! loopback aggregator, compared as the reference recordings require: per publish, the measurements sent
//! (merged over batches, common tags included, `name` among the tags, self-metrics left out)
//! equal the expected ones as a multiset, values to a relative 1e-9; every POST holds at most
//! `batch_size` measurements, with the right headers, gzipped. (The same scenarios in memory
//! are in tests/conformance.rs; both replay them through tests/support/conformance.rs.)

mod support;

use spectator::testing::aggregator::{Aggregator, ReceivedMeasurement, ReceivedRequest};
use spectator::PublishReport;
use support::conformance::{assert_same, load_all, Scenario, Sent};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn as_sent(m: ReceivedMeasurement) -> Sent {
    Sent {
        tags: m.tags,
        op: u8::try_from(m.op).unwrap_or(u8::MAX),
        value: m.value,
    }
}

/// Replays `scenario` against a fresh aggregator; per publish, its report and the requests
/// the aggregator received for it.
fn publish_over_http(
    rt: &tokio::runtime::Runtime,
    scenario: &Scenario,
) -> (usize, Vec<(PublishReport, Vec<ReceivedRequest>)>) {
    let agg = Aggregator::start().unwrap();
    let (clock, builder) = scenario.setup();
    let registry = builder.uri(&agg.uri()).build();
    let published = scenario.replay(&registry, &clock, |r| {
        let report = rt.block_on(r.publish());
        (report, agg.take_requests())
    });
    (registry.config().batch_size, published)
}

#[test]
fn conformance_vectors_over_http() {
    let rt = runtime();
    for scenario in load_all() {
        let (batch_size, published) = publish_over_http(&rt, &scenario);
        assert_eq!(
            published.len(),
            scenario.expected.len(),
            "{}: publishes",
            scenario.name
        );
        for (i, ((report, requests), expected)) in
            published.into_iter().zip(&scenario.expected).enumerate()
        {
            let label = format!("{} publish #{i}", scenario.name);
            assert_eq!(
                (report.dropped, report.pending),
                (0, 0),
                "{label}: {report:?}"
            );
            let mut sent = Vec::new();
            for r in requests {
                assert_eq!(
                    (r.method.as_str(), r.path.as_str()),
                    ("POST", "/api/v4/update")
                );
                assert_eq!(r.header("content-type"), Some("application/json"));
                assert_eq!(r.header("content-encoding"), Some("gzip"));
                assert_eq!(r.header("accept-encoding"), Some("gzip"));
                assert_eq!(r.status, Some(200), "{label}: {:?}", r.violations);
                let payload = r.payload.expect("payload decodes");
                assert!(
                    payload.len() <= batch_size,
                    "{label}: a POST held {}",
                    payload.len()
                );
                sent.extend(payload.into_iter().map(as_sent));
            }
            assert_eq!(report.sent, sent.len(), "{label}");
            assert_same(&label, &sent, expected);
        }
    }
}

#[test]
fn batching_splits_posts_at_batch_size() {
    let rt = runtime();
    let scenario = load_all()
        .into_iter()
        .find(|s| s.name == "batching")
        .expect("batching vector");
    let (batch_size, published) = publish_over_http(&rt, &scenario);
    assert_eq!(batch_size, 10);
    let (report, requests) = &published[0];
    let counts: Vec<usize> = requests.iter().map(|r| r.measurement_count()).collect();
    assert_eq!(counts, [10, 10, 5]);
    assert_eq!(report.batches, 3);
}
