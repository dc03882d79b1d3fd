//! The recorded conformance scenarios (tests/conformance/*.json, copied from the reference
//! client's recordings): loading, replaying against a registry, and comparing what a poll or
//! a publish produced with what the reference client sent.

use serde_json::Value;
use spectator::{ManualClock, Registry};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Wall time (s) the scenarios' clock starts at.
pub const START_WALL_S: u64 = 1_600_000_000;

/// One measurement as sent: every tag (common tags and `name` included), op and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sent {
    pub tags: BTreeMap<String, String>,
    pub op: u8,
    pub value: f64,
}

pub struct Scenario {
    pub name: String,
    pub common_tags: Vec<(String, String)>,
    pub batch_size: Option<usize>,
    steps: Vec<Value>,
    pub expected: Vec<Vec<Sent>>,
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Every scenario, sorted by file name.
pub fn load_all() -> Vec<Scenario> {
    let mut paths: Vec<_> = std::fs::read_dir(dir())
        .expect("tests/conformance")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 8, "conformance vectors missing: {paths:?}");
    paths.iter().map(|p| load(p)).collect()
}

fn load(path: &std::path::Path) -> Scenario {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let common_tags = v
        .get("common_tags")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let expected = v["expected_publishes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_array().unwrap().iter().map(sent_from_json).collect())
        .collect();
    Scenario {
        name: path.file_stem().unwrap().to_string_lossy().into_owned(),
        common_tags,
        batch_size: v
            .get("batch_size")
            .and_then(Value::as_u64)
            .map(|b| b as usize),
        steps: v["steps"].as_array().unwrap().clone(),
        expected,
    }
}

fn sent_from_json(m: &Value) -> Sent {
    Sent {
        tags: m["tags"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
        op: m["op"].as_u64().unwrap() as u8,
        value: number(&m["value"]),
    }
}

fn number(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "NaN" => f64::NAN,
        other => other.as_f64().unwrap(),
    }
}

impl Scenario {
    /// The clock and a registry builder set up as the scenario says; add a URI to publish.
    pub fn setup(&self) -> (ManualClock, spectator::RegistryBuilder) {
        let clock = ManualClock::new(START_WALL_S * 1000, 0);
        let tags: Vec<(&str, &str)> = self
            .common_tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut builder = Registry::builder().clock(clock.clone()).common_tags(&tags);
        if let Some(b) = self.batch_size {
            builder = builder.batch_size(b);
        }
        (clock, builder)
    }

    /// Applies each step's ops, calling `publish` at every step marked `publish: true`, and
    /// returns what each call returned. Every meter handle stays alive until the end, as the
    /// scenario's user code would keep it.
    pub fn replay<P>(
        &self,
        registry: &Registry,
        clock: &ManualClock,
        mut publish: impl FnMut(&Registry) -> P,
    ) -> Vec<P> {
        let mut handles: Vec<Box<dyn std::any::Any>> = Vec::new();
        let mut published = Vec::new();
        for step in &self.steps {
            for op in step["ops"].as_array().unwrap() {
                apply(registry, clock, op, &mut handles);
            }
            if step["publish"].as_bool().unwrap_or(false) {
                published.push(publish(registry));
            }
        }
        drop(handles);
        published
    }
}

fn apply(
    registry: &Registry,
    clock: &ManualClock,
    op: &Value,
    keep: &mut Vec<Box<dyn std::any::Any>>,
) {
    let meter = op["meter"].as_str().unwrap();
    if meter == "clock" {
        let wall = op.get("wall").map(number).unwrap_or(0.0);
        let mono = op.get("mono").map(number).unwrap_or(0.0);
        clock.set_wall_time(clock_ms(clock, wall));
        clock.set_monotonic_time(spectator::Clock::monotonic_time(clock) + (mono * 1e9) as u64);
        return;
    }
    let name = op["name"].as_str().unwrap();
    let tags: Vec<(String, String)> = op["tags"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let value = number(&op["value"]);
    // Negative durations cannot be a `Duration`: the timer ignores them, and so does this.
    let duration = Duration::try_from_secs_f64(value).ok();
    match meter {
        "counter" => {
            let c = registry.counter(name, &tags);
            c.add(value);
            keep.push(Box::new(c));
        }
        "timer" => {
            let t = registry.timer(name, &tags);
            if let Some(d) = duration {
                t.record(d);
            }
            keep.push(Box::new(t));
        }
        "distribution_summary" => {
            let s = registry.distribution_summary(name, &tags);
            s.record(value);
            keep.push(Box::new(s));
        }
        "gauge" => {
            let g = registry.gauge(name, &tags);
            g.set(value);
            keep.push(Box::new(g));
        }
        "percentile_timer" => {
            let t = registry.percentile_timer(name, &tags);
            if let Some(d) = duration {
                t.record(d);
            }
            keep.push(Box::new(t));
        }
        "percentile_distribution_summary" => {
            let s = registry.percentile_distribution_summary(name, &tags);
            s.record(value);
            keep.push(Box::new(s));
        }
        other => panic!("unknown meter kind in a conformance vector: {other}"),
    }
}

fn clock_ms(clock: &ManualClock, advance_s: f64) -> u64 {
    spectator::Clock::wall_time(clock) + (advance_s * 1000.0).round() as u64
}

/// The measurements as the Atlas publisher sends them: common tags, then the id's own tags
/// (which win on a clash), then `name`; the NaN a gauge reports once after `set(NaN)` is left
/// out, as the Atlas output does.
pub fn as_sent(common_tags: &[(String, String)], ms: &[spectator::Measurement]) -> Vec<Sent> {
    ms.iter()
        .filter(|m| m.value.is_finite())
        .map(|m| {
            let mut tags: BTreeMap<String, String> = common_tags.iter().cloned().collect();
            for (k, v) in m.id.tags() {
                tags.insert(k.to_owned(), v.to_owned());
            }
            tags.insert("name".to_owned(), m.id.name().to_owned());
            Sent {
                tags,
                op: m.op.code(),
                value: m.value,
            }
        })
        .collect()
}

/// Asserts that `actual` equals `expected` as a multiset (values to a relative 1e-9),
/// leaving out self-metrics (names starting `spectator.`).
pub fn assert_same(context: &str, actual: &[Sent], expected: &[Sent]) {
    let key = |s: &Sent| format!("{:?}|{}", s.tags, s.op);
    let mut actual: Vec<&Sent> = actual
        .iter()
        .filter(|s| {
            !s.tags
                .get("name")
                .is_some_and(|n| n.starts_with("spectator."))
        })
        .collect();
    let mut expected: Vec<&Sent> = expected.iter().collect();
    actual.sort_by_key(|s| key(s));
    expected.sort_by_key(|s| key(s));
    let show = |v: &[&Sent]| {
        v.iter()
            .map(|s| format!("  {} op={} value={}", key(s), s.op, s.value))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mismatch = || {
        format!(
            "{context}: measurements differ\nactual:\n{}\nexpected:\n{}",
            show(&actual),
            show(&expected)
        )
    };
    assert_eq!(actual.len(), expected.len(), "{}", mismatch());
    for (a, e) in actual.iter().zip(&expected) {
        assert_eq!(key(a), key(e), "{}", mismatch());
        let close = (a.value - e.value).abs() <= 1e-9 * e.value.abs().max(1e-300);
        assert!(close, "{}", mismatch());
    }
}
