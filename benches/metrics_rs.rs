//! The `metrics` facade into spectator (`spectator::metrics_rs::SpectatorRecorder`) next to
//! the same facade into `metrics-exporter-prometheus`, each comparison in one criterion group:
//!
//! - `facade lookup`: `metrics::counter!(name, 2 labels).increment(1)` (the key is looked up
//!   in the recorder at every call) into each recorder, with 1k other series registered, and
//!   `registry.counter(name, 2 tags).increment()` for reference;
//! - `facade cached handle`: a `metrics::Counter` kept by the caller, from each recorder,
//!   next to a cached spectator `Counter`.
//!
//! Both recorders are used through `metrics::with_local_recorder`, so neither is the global
//! recorder. After each group a `summary:` line gives ns/op (median of the samples) and the
//! ratios.
//!
//! `cargo bench --bench metrics_rs -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use spectator::metrics_rs::SpectatorRecorder;

#[path = "support/tally.rs"]
mod tally;
use tally::{bench, Tally};

/// Both recorders (and a registry), each holding 1k other series.
fn setup() -> (spectator::Registry, SpectatorRecorder, PrometheusRecorder) {
    let registry = spectator::Registry::default();
    let spectator = SpectatorRecorder::new(registry.clone());
    let prometheus = PrometheusBuilder::new().build_recorder();
    for recorder in [&spectator as &dyn metrics::Recorder, &prometheus] {
        metrics::with_local_recorder(recorder, || {
            for i in 0..1_000 {
                metrics::counter!("other", "i" => i.to_string()).increment(1);
            }
        });
    }
    // A running program polls every step; each poll folds new meters into one map.
    registry.measurements();
    (registry, spectator, prometheus)
}

/// A registry of native meters only, holding 1k other series (a native counter of a name the
/// facade registered would be another meter type: see the `metrics_rs` module docs).
fn native() -> spectator::Registry {
    let registry = spectator::Registry::default();
    for i in 0..1_000 {
        registry.counter("other", &[("i", &i.to_string())]);
    }
    registry.measurements();
    registry
}

fn lookup(c: &mut Criterion) {
    let (registry, spectator, prometheus) = setup();
    let native = native();
    let t = Tally::default();
    let mut g = c.benchmark_group("facade lookup (1k other series)");
    let s_name = "metrics + SpectatorRecorder: counter!(name, 2 labels).increment(1)";
    let p_name = "metrics + prometheus exporter: counter!(name, 2 labels).increment(1)";
    let r_name = "spectator: registry.counter(name, 2 tags).increment()";
    metrics::with_local_recorder(&spectator, || {
        bench(&mut g, &t, s_name, || {
            metrics::counter!("server.numRequests", "status" => "200", "method" => "GET")
                .increment(1)
        })
    });
    metrics::with_local_recorder(&prometheus, || {
        bench(&mut g, &t, p_name, || {
            metrics::counter!("server.numRequests", "status" => "200", "method" => "GET")
                .increment(1)
        })
    });
    bench(&mut g, &t, r_name, || {
        native
            .counter(
                black_box("server.numRequests"),
                &[("status", "200"), ("method", "GET")],
            )
            .increment()
    });
    g.finish();
    let (s, p, r) = (t.ns(s_name), t.ns(p_name), t.ns(r_name));
    println!(
        "summary facade lookup: SpectatorRecorder {s:.2} ns, prometheus exporter {p:.2} ns \
         (SpectatorRecorder/prometheus {:.2}x, target <= 0.5x); registry.counter {r:.2} ns",
        s / p
    );
    if !s.is_nan() {
        // Both recorders saw the increments.
        let polled = registry.measurements();
        assert!(polled
            .iter()
            .any(|m| m.id.name() == "server.numRequests" && m.value > 0.0));
        assert!(prometheus.handle().render().contains("server_numRequests"));
    }
}

fn cached(c: &mut Criterion) {
    let (registry, spectator, prometheus) = setup();
    let labels = [("status", "200"), ("method", "GET")];
    let facade = metrics::with_local_recorder(&spectator, || {
        metrics::counter!("server.numRequests", &labels)
    });
    let exporter = metrics::with_local_recorder(&prometheus, || {
        metrics::counter!("server.numRequests", &labels)
    });
    let native = native().counter("server.numRequests", &labels);
    let t = Tally::default();
    let mut g = c.benchmark_group("facade cached handle");
    let s_name = "cached metrics::Counter from SpectatorRecorder: increment(1)";
    let n_name = "cached spectator Counter: increment()";
    let p_name = "cached metrics::Counter from prometheus exporter: increment(1)";
    bench(&mut g, &t, s_name, || facade.increment(black_box(1)));
    bench(&mut g, &t, n_name, || native.increment());
    bench(&mut g, &t, p_name, || exporter.increment(black_box(1)));
    g.finish();
    let (s, n, p) = (t.ns(s_name), t.ns(n_name), t.ns(p_name));
    println!(
        "summary facade cached handle: metrics::Counter over spectator {s:.2} ns, spectator \
         Counter {n:.2} ns ({:.2}x), metrics::Counter over prometheus exporter {p:.2} ns ({:.2}x)",
        s / n,
        s / p
    );
    if !s.is_nan() {
        let polled = registry.measurements();
        assert!(polled
            .iter()
            .any(|m| m.id.name() == "server.numRequests" && m.value > 0.0));
        assert!(native.count() > 0.0);
    }
}

criterion_group!(benches, lookup, cached);
criterion_main!(benches);
