//! Property tests of the public API with arbitrary `f64`s (NaN, infinities, signed zeros,
//! extremes) and arbitrary strings: nothing panics, and each method gives its documented
//! result.

use std::time::Duration;

use proptest::prelude::*;
use spectator::rules::{is_valid_char, sanitize};
use spectator::testing::aggregator::{check_measurement, decode_payload};
use spectator::wire::encode_batch;
use spectator::{Config, Id, ManualClock, Measurement, Op, Registry};

/// Any f64, with the special values well represented.
fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN),
        Just(f64::MIN_POSITIVE),
        Just(f64::EPSILON),
        -1e6..1e6f64,
        any::<f64>(),
    ]
}

/// Short arbitrary strings, ASCII-heavy so that keys collide now and then.
fn any_str() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{0,2}",
        "[ -~]{0,12}",
        any::<String>(),
        Just("name".to_string()),
        Just("statistic".to_string()),
    ]
}

fn tags() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((any_str(), any_str()), 0..6)
}

fn refs(tags: &[(String, String)]) -> Vec<(&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn registry() -> (ManualClock, Registry) {
    let clock = ManualClock::new(1_600_000_000_000, 0);
    (clock.clone(), Registry::builder().clock(clock).build())
}

/// The one measurement of `stat` in `ms`, if any.
fn stat(ms: &[Measurement], stat: &str) -> Option<f64> {
    let found: Vec<f64> = ms
        .iter()
        .filter(|m| m.id.tag("statistic") == Some(stat))
        .map(|m| m.value)
        .collect();
    assert!(found.len() <= 1, "{ms:?}");
    found.first().copied()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn id_methods(name in any_str(), tags in tags(), k in any_str(), v in any_str()) {
        let t = refs(&tags);
        let id = Id::new(&name, &t);
        prop_assert_eq!(id.name(), name.as_str());
        let got: Vec<(&str, &str)> = id.tags().collect();
        prop_assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "sorted, unique keys");
        prop_assert_eq!(id.tag_count(), got.len());
        for (key, _) in &t {
            let last = t.iter().rev().find(|(k2, _)| k2 == key).unwrap().1;
            prop_assert_eq!(id.tag(key), Some(last));
        }
        // Any order, same id, same hash, and Ord agrees with Eq.
        let mut rev = got.clone();
        rev.reverse();
        let again = Id::new(&name, &rev);
        prop_assert_eq!(&again, &id);
        prop_assert_eq!(again.cmp(&id), std::cmp::Ordering::Equal);
        let hash = |i: &Id| {
            use std::hash::{BuildHasher, RandomState};
            let s = RandomState::new();
            (s.hash_one(i), s.hash_one(i))
        };
        let (a, b) = hash(&id);
        prop_assert_eq!(a, b);
        // Display: name, then k=v pairs sorted by key.
        let shown: Vec<String> = got.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let want = if shown.is_empty() { name.clone() } else { format!("{name}:{}", shown.join(",")) };
        prop_assert_eq!(id.to_string(), want);
        // Derived ids.
        let (with_tag, with_tags) = (id.with_tag(&k, &v), id.with_tags(&[(&k, &v)]));
        prop_assert_eq!(with_tag.tag(&k), Some(v.as_str()));
        prop_assert_eq!(with_tags.tag(&k), Some(v.as_str()));
        prop_assert_eq!(id.with_tags(&[]), id.clone());
        let with_stat = id.with_stat(&v);
        prop_assert_eq!(with_stat.tag("statistic"), Some(v.as_str()));
        let stat = id.with_default_stat(&v);
        prop_assert_eq!(stat.tag("statistic"), Some(id.tag("statistic").unwrap_or(&v)));
    }

    #[test]
    fn sanitize_and_valid_chars(s in any_str()) {
        let clean = sanitize(&s);
        prop_assert!(clean.chars().all(is_valid_char));
        prop_assert_eq!(clean.chars().count(), s.chars().count());
        for (a, b) in s.chars().zip(clean.chars()) {
            prop_assert_eq!(b, if is_valid_char(a) { a } else { '_' });
        }
    }

    #[test]
    fn counter(values in proptest::collection::vec(any_f64(), 0..20), incs in 0u32..5) {
        let (_, r) = registry();
        let c = r.counter("prop.counter", &[]);
        let mut amount = 0.0;
        for &v in &values {
            c.add(v);
            if v > 0.0 && v.is_finite() {
                amount += v;
            }
        }
        for _ in 0..incs {
            c.increment();
        }
        // The adds as one f64 sum in the order of the calls (one thread: no striping), as
        // Java's counter; the increments counted as an integer beside it.
        let want = amount + f64::from(incs);
        prop_assert_eq!(c.count(), want);
        let ms = r.measurements();
        // Sent when finite and not 0, as an Add; the count starts over.
        if want.is_finite() && want > 0.0 {
            prop_assert_eq!(ms.len(), 1);
            prop_assert_eq!((ms[0].op, ms[0].value), (Op::Add, want));
        } else {
            prop_assert!(ms.is_empty(), "{:?}", ms);
        }
        prop_assert_eq!(c.count(), 0.0);
    }

    #[test]
    fn timer(nanos in proptest::collection::vec(0u64..1_000_000_000_000, 0..20), huge in any::<bool>()) {
        let (clock, r) = registry();
        let t = r.timer("prop.timer", &[]);
        for &n in &nanos {
            t.record(Duration::from_nanos(n));
        }
        let timed = t.time(|| {
            clock.advance(Duration::from_millis(5));
            7
        });
        prop_assert_eq!(timed, 7);
        let mut all = nanos.clone();
        all.push(5_000_000);
        if huge {
            t.record(Duration::MAX); // saturates to u64::MAX ns
            all.push(u64::MAX);
        }
        prop_assert_eq!(t.count(), all.len() as u64);
        let total: u64 = all.iter().fold(0u64, |a, &b| a.wrapping_add(b));
        if !huge {
            prop_assert_eq!(t.total_time(), Duration::from_nanos(total));
        }
        let ms = r.measurements();
        prop_assert_eq!(stat(&ms, "count"), Some(all.len() as f64));
        let max = *all.iter().max().unwrap() as f64 * 1e-9;
        prop_assert_eq!(stat(&ms, "max"), Some(max));
        prop_assert!(ms.iter().all(|m| m.value.is_finite() && m.value >= 0.0));
        prop_assert!(r.measurements().is_empty(), "idle: nothing");
    }

    #[test]
    fn distribution_summary(values in proptest::collection::vec(any_f64(), 0..20)) {
        let (_, r) = registry();
        let s = r.distribution_summary("prop.summary", &[]);
        let accepted: Vec<f64> = values.iter().copied().filter(|v| *v >= 0.0 && v.is_finite()).collect();
        for &v in &values {
            s.record(v);
        }
        prop_assert_eq!(s.count(), accepted.len() as u64);
        let total = accepted.iter().fold(0.0, |a, b| a + b);
        prop_assert_eq!(s.total_amount(), total);
        let ms = r.measurements();
        prop_assert!(ms.iter().all(|m| m.value.is_finite()));
        if accepted.is_empty() {
            prop_assert!(ms.is_empty());
        } else {
            prop_assert_eq!(stat(&ms, "count"), Some(accepted.len() as f64));
            let max = accepted.iter().copied().fold(f64::MIN, f64::max);
            prop_assert_eq!(stat(&ms, "max"), Some(max));
        }
    }

    #[test]
    fn gauge(v in any_f64(), age_s in 0u64..2_000) {
        let (clock, r) = registry();
        let g = r.gauge("prop.gauge", &[]);
        prop_assert!(g.get().is_nan(), "never set");
        g.set(v);
        prop_assert_eq!(g.get().to_bits(), v.to_bits());
        clock.advance(Duration::from_secs(age_s));
        let ms = r.measurements();
        // Sent while finite and at most 15 minutes old, as a Max; NaN is reported once (an
        // output to spectatord sends it so that spectatord stops the gauge too).
        if (v.is_finite() || v.is_nan()) && age_s <= 900 {
            prop_assert_eq!(ms.len(), 1);
            prop_assert_eq!((ms[0].op, ms[0].value.to_bits()), (Op::Max, v.to_bits()));
            prop_assert!(r.measurements().is_empty() || v.is_finite());
        } else {
            prop_assert!(ms.is_empty());
        }
    }

    #[test]
    fn max_gauge(values in proptest::collection::vec(any_f64(), 0..20)) {
        let (_, r) = registry();
        let g = r.max_gauge("prop.max", &[]);
        for &v in &values {
            g.set(v);
        }
        let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let ms = r.measurements();
        if finite.is_empty() {
            prop_assert!(g.get().is_nan() || !ms.is_empty());
            prop_assert!(ms.is_empty());
        } else {
            let max = finite.iter().copied().fold(f64::MIN, f64::max);
            prop_assert_eq!(ms.len(), 1);
            prop_assert_eq!((ms[0].op, ms[0].value), (Op::Max, max));
        }
        prop_assert!(g.get().is_nan(), "reset at the poll");
    }

    #[test]
    fn percentile_timer(nanos in proptest::collection::vec(any::<u64>(), 0..20), ps in proptest::collection::vec(any_f64(), 1..5)) {
        let (_, r) = registry();
        let t = r.percentile_timer("prop.ptimer", &[]);
        for &n in &nanos {
            t.record(Duration::from_nanos(n));
        }
        prop_assert_eq!(t.count(), nanos.len() as u64);
        for &p in &ps {
            let d = t.percentile(p);
            if nanos.is_empty() || p.is_nan() {
                prop_assert_eq!(d, Duration::ZERO);
            } else {
                // Inside the clamped range's buckets (10 ms ..= 60 s, bucket bounds around them).
                prop_assert!(d <= Duration::from_secs(70), "{d:?}");
            }
        }
        if !nanos.is_empty() {
            let mut last = Duration::ZERO;
            for p in [0.0, 10.0, 50.0, 90.0, 99.9, 100.0] {
                let d = t.percentile(p);
                prop_assert!(d >= last, "percentiles go up with p");
                last = d;
            }
        }
        let ms = r.measurements();
        let buckets: f64 = ms.iter().filter(|m| m.id.tag("statistic") == Some("percentile")).map(|m| m.value).sum();
        prop_assert_eq!(buckets, nanos.len() as f64);
        prop_assert!(ms.iter().all(|m| m.value.is_finite()));
    }

    #[test]
    fn percentile_distribution_summary(values in proptest::collection::vec(any_f64(), 0..20), ps in proptest::collection::vec(any_f64(), 1..5)) {
        let (_, r) = registry();
        let s = r.percentile_distribution_summary("prop.psummary", &[]);
        for &v in &values {
            s.record(v);
        }
        let accepted = values.iter().filter(|v| **v >= 0.0 && v.is_finite()).count();
        prop_assert_eq!(s.count(), accepted as u64);
        for &p in &ps {
            let x = s.percentile(p);
            if accepted == 0 || p.is_nan() {
                prop_assert!(x.is_nan());
            } else {
                prop_assert!(x >= 0.0 && x.is_finite(), "{x}");
            }
        }
        let ms = r.measurements();
        let buckets: f64 = ms.iter().filter(|m| m.id.tag("statistic") == Some("percentile")).map(|m| m.value).sum();
        prop_assert_eq!(buckets, accepted as f64);
        prop_assert!(ms.iter().all(|m| m.value.is_finite()));
    }

    #[test]
    fn registry_with_arbitrary_ids(name in any_str(), tags in tags(), v in any_f64()) {
        let (_, r) = registry();
        let t = refs(&tags);
        // Every meter kind under arbitrary ids (the first kind wins an id; the rest are
        // detached and report nothing).
        r.counter(&name, &t).add(v);
        r.timer(&name, &t).record(Duration::from_millis(1));
        r.distribution_summary(&name, &t).record(v);
        r.gauge(&name, &t).set(v);
        r.max_gauge(&name, &t).set(v);
        r.percentile_timer(&name, &t).record(Duration::from_millis(1));
        r.percentile_distribution_summary(&name, &t).record(v);
        let id = Id::new(&name, &t);
        r.counter_with_id(&id).increment();
        prop_assert_eq!(r.len(), 1);
        let ms = r.measurements();
        prop_assert!(ms.iter().all(|m| m.value.is_finite() && m.id.name() == name));
        // The counter: `v` when it counts, plus the increment.
        let want = 1.0 + if v > 0.0 && v.is_finite() { v } else { 0.0 };
        let got: f64 = ms.iter().map(|m| m.value).sum();
        prop_assert!(got == want || !want.is_finite(), "{got} {want}");
    }

    #[test]
    fn payload_decodes_and_passes_the_character_rules(
        common in tags(),
        batch in proptest::collection::vec((any_str(), tags(), any_f64()), 0..8),
    ) {
        let ms: Vec<Measurement> = batch
            .iter()
            .map(|(n, t, v)| Measurement::new(Id::new(n, &refs(t)), *v))
            .collect();
        let mut json = Vec::new();
        encode_batch(&common, &ms, &mut json);
        let decoded = decode_payload(&json).map_err(TestCaseError::fail)?;
        let finite: Vec<&Measurement> = ms.iter().filter(|m| m.value.is_finite()).collect();
        prop_assert_eq!(decoded.len(), finite.len());
        for (m, got) in finite.iter().zip(&decoded) {
            prop_assert_eq!(got.value, m.value);
            prop_assert_eq!(got.op, u64::from(m.op.code()));
            prop_assert_eq!(got.name(), sanitize(m.id.name()));
            let verdict = check_measurement(got);
            let user = got.tags.keys().filter(|k| *k != "name" && !k.starts_with("nf.")).count();
            if user <= 20 && !got.tags.keys().any(|k| k.starts_with("atlas.")) {
                prop_assert!(verdict.rejected.is_empty(), "{:?}", verdict.rejected);
            }
        }
    }

    #[test]
    fn config_from_arbitrary_values(values in proptest::collection::vec(any_str(), spectator::Config::ENV_VARIABLES.len())) {
        let vars = spectator::Config::ENV_VARIABLES;
        match Config::from_lookup(|k| vars.iter().position(|v| *v == k).map(|i| values[i].clone())) {
            Ok(c) => {
                prop_assert!(c.batch_size > 0 && c.max_meters > 0);
                prop_assert!(!c.frequency.is_zero() && !c.timeout.is_zero());
            }
            // A clear error naming one of the variables, never a panic.
            Err(e) => {
                prop_assert!(vars.contains(&e.variable()));
                prop_assert!(e.to_string().contains(e.variable()));
            }
        }
    }

    #[test]
    fn manual_clock(wall in any::<u64>(), mono in any::<u64>(), secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        use spectator::Clock;
        let c = ManualClock::new(wall, mono);
        let d = Duration::new(secs, nanos);
        c.advance(d);
        // Saturating: never wraps around.
        prop_assert!(c.wall_time() >= wall && c.monotonic_time() >= mono);
        c.set_wall_time(wall);
        c.set_monotonic_time(mono);
        prop_assert_eq!((c.wall_time(), c.monotonic_time()), (wall, mono));
    }

    #[test]
    fn measurement_op_follows_the_statistic(s in any_str(), v in any_f64()) {
        let m = Measurement::new(Id::new("m", &[("statistic", &s)]), v);
        let add = ["count", "totalAmount", "totalTime", "totalOfSquares", "percentile"].contains(&s.as_str());
        prop_assert_eq!(m.op, if add { Op::Add } else { Op::Max });
        prop_assert_eq!(m.value.to_bits(), v.to_bits());
    }
}
