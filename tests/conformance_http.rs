//! Every conformance vector (tests/conformance/*.json) replayed over real HTTP against the
//! loopback aggregator, compared as SPEC section 8 says: per publish, the measurements sent
//! (merged over batches, common tags included, `name` among the tags, self-metrics left out)
//! equal the expected ones as a multiset, values to a relative 1e-9; every POST holds at most
//! `batch_size` measurements, with the right headers, gzipped.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use spectator::testing::aggregator::{Aggregator, ReceivedMeasurement};
use spectator::{Clock, ManualClock, Registry};

const START_WALL_MS: u64 = 1_600_000_000_000;

fn tags_of(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        other => other.as_f64().unwrap_or(f64::NAN),
    }
}

fn seconds(v: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(v).ok()
}

/// Applies one op, keeping the meter handle alive as the scenario's user code would.
fn apply(registry: &Registry, clock: &ManualClock, op: &Value, keep: &mut Vec<Box<dyn Any>>) {
    let meter = op["meter"].as_str().unwrap_or_default();
    if meter == "clock" {
        let wall = number(&op["wall"]);
        let mono = number(&op["mono"]);
        clock.set_wall_time(clock.wall_time() + (wall * 1000.0).round() as u64);
        clock.set_monotonic_time(clock.monotonic_time() + (mono * 1e9).round() as u64);
        return;
    }
    let name = op["name"].as_str().unwrap_or_default();
    let owned = tags_of(&op["tags"]);
    let tags: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let value = number(&op["value"]);
    match meter {
        "counter" => {
            let c = registry.counter(name, &tags);
            c.add(value);
            keep.push(Box::new(c));
        }
        "timer" => {
            let t = registry.timer(name, &tags);
            if let Some(d) = seconds(value) {
                t.record(d);
            }
            keep.push(Box::new(t));
        }
        "distribution_summary" => {
            let d = registry.distribution_summary(name, &tags);
            d.record(value);
            keep.push(Box::new(d));
        }
        "gauge" => {
            let g = registry.gauge(name, &tags);
            g.set(value);
            keep.push(Box::new(g));
        }
        "percentile_timer" => {
            let t = registry.percentile_timer(name, &tags);
            if let Some(d) = seconds(value) {
                t.record(d);
            }
            keep.push(Box::new(t));
        }
        "percentile_distribution_summary" => {
            let d = registry.percentile_distribution_summary(name, &tags);
            d.record(value);
            keep.push(Box::new(d));
        }
        other => panic!("unknown op kind {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Multiset equality with a relative tolerance on values; a readable diff on failure.
fn assert_same(label: &str, mut actual: Vec<ReceivedMeasurement>, expected: &[Value]) {
    let mut missing = Vec::new();
    for e in expected {
        let tags: BTreeMap<String, String> = tags_of(&e["tags"]).into_iter().collect();
        let op = e["op"].as_u64().unwrap_or(99);
        let value = number(&e["value"]);
        match actual
            .iter()
            .position(|a| a.tags == tags && a.op == op && close(a.value, value))
        {
            Some(i) => {
                actual.swap_remove(i);
            }
            None => missing.push(format!("{tags:?} op={op} value={value}")),
        }
    }
    assert!(
        missing.is_empty() && actual.is_empty(),
        "{label}: missing {missing:#?}\nunexpected {actual:#?}"
    );
}

async fn run_scenario(path: &Path) {
    let label = path.file_name().unwrap().to_string_lossy().into_owned();
    let scenario: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let agg = Aggregator::start().unwrap();
    let clock = ManualClock::new(START_WALL_MS, 0);
    let common = tags_of(&scenario["common_tags"]);
    let common: Vec<(&str, &str)> = common
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let batch_size = scenario["batch_size"].as_u64().unwrap_or(10_000) as usize;
    let registry = Registry::builder()
        .uri(&agg.uri())
        .batch_size(batch_size)
        .common_tags(&common)
        .frequency(Duration::from_secs(5))
        .clock(clock.clone())
        .build();

    let mut keep: Vec<Box<dyn Any>> = Vec::new();
    let expected = scenario["expected_publishes"].as_array().unwrap();
    let mut publish_index = 0;
    for step in scenario["steps"].as_array().unwrap() {
        for op in step["ops"].as_array().unwrap() {
            apply(&registry, &clock, op, &mut keep);
        }
        if !step["publish"].as_bool().unwrap_or(false) {
            continue;
        }
        let report = registry.publish().await;
        let requests = agg.take_requests();
        assert_eq!(report.dropped, 0, "{label}: {report:?}");
        assert_eq!(report.pending, 0, "{label}: {report:?}");
        let mut sent = Vec::new();
        for r in &requests {
            assert_eq!(r.method, "POST", "{label}");
            assert_eq!(r.path, "/api/v4/update", "{label}");
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(r.header("content-encoding"), Some("gzip"));
            assert_eq!(r.header("accept-encoding"), Some("gzip"));
            assert_eq!(r.status, Some(200), "{label}: {:?}", r.violations);
            let payload = r.payload.clone().expect("payload decodes");
            assert!(
                payload.len() <= batch_size,
                "{label}: a POST held {} > {batch_size}",
                payload.len()
            );
            sent.extend(payload);
        }
        let total: usize = requests.iter().map(|r| r.measurement_count()).sum();
        assert_eq!(report.sent, total, "{label}");
        sent.retain(|m| !m.name().starts_with("spectator."));
        let want = expected[publish_index].as_array().unwrap();
        assert_same(&format!("{label} publish {publish_index}"), sent, want);
        publish_index += 1;
    }
    assert_eq!(publish_index, expected.len(), "{label}: publishes");
    drop(keep);
}

#[tokio::test]
async fn conformance_vectors_over_http() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 8, "vectors found: {paths:?}");
    for p in &paths {
        run_scenario(p).await;
    }
}

#[tokio::test]
async fn batching_splits_posts_at_batch_size() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/batching.json");
    let agg = Aggregator::start().unwrap();
    let registry = Registry::builder()
        .uri(&agg.uri())
        .batch_size(10)
        .clock(ManualClock::new(START_WALL_MS, 0))
        .build();
    let scenario: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let clock = ManualClock::new(START_WALL_MS, 0);
    let mut keep = Vec::new();
    for op in scenario["steps"][0]["ops"].as_array().unwrap() {
        apply(&registry, &clock, op, &mut keep);
    }
    let report = registry.publish().await;
    let counts: Vec<usize> = agg
        .requests()
        .iter()
        .map(|r| r.measurement_count())
        .collect();
    assert_eq!(counts, [10, 10, 5]);
    assert_eq!(report.batches, 3);
}
