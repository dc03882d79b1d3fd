//! spectator's hot paths side by side with what a Rust user would otherwise pick, each
//! comparison in one criterion group (so baseline and candidate share one run's conditions):
//!
//! - `counted`: a `#[counted]` fn vs a fn bumping a static `AtomicU64` (the floor for a
//!   counter) vs the same fn uninstrumented;
//! - `timed`: a `#[timed]` fn vs two `Instant::now()` calls;
//! - `dynamic lookup`: `registry.counter(name, 2 tags).increment()` vs the `metrics` crate's
//!   `counter!` with the Prometheus exporter's recorder installed vs `prometheus`'s
//!   `IntCounterVec::with_label_values`;
//! - `threads/*`: counter, timer, percentile timer and gauge on one meter, from 1 and from 2
//!   threads (per-op time is wall time divided by all threads' operations).
//!
//! After each group a `summary:` line gives ns/op (median of the samples) and the ratios.
//!
//! `cargo bench --bench compare -- --warm-up-time 1 --measurement-time 3`

use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

#[path = "support/tally.rs"]
mod tally;
use tally::{bench, Tally};

/// Benchmarks `f` run by `threads` threads at once, each `iters` times; reports wall time per
/// operation over all threads (so 2 threads that scale perfectly halve it).
fn bench_threads(
    g: &mut BenchmarkGroup<'_, WallTime>,
    t: &Tally,
    name: &str,
    threads: u64,
    f: impl Fn() + Sync,
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(threads as usize);
            let wall = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            let start = Instant::now();
                            for _ in 0..iters {
                                f();
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .max()
                    .unwrap()
            });
            let per_op = wall / threads as u32;
            t.add(name, wall, iters * threads);
            per_op
        })
    });
}

// ---------------------------------------------------------------------------------------
// #[counted] vs a static AtomicU64

static FLOOR: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn handle(x: u64) -> u64 {
    black_box(x)
}

#[inline(never)]
fn handle_atomic(x: u64) -> u64 {
    FLOOR.fetch_add(1, Ordering::Relaxed);
    black_box(x)
}

#[inline(never)]
#[spectator::counted("bench.counted")]
fn handle_counted(x: u64) -> u64 {
    black_box(x)
}

fn counted(c: &mut Criterion) {
    let t = Tally::default();
    let mut g = c.benchmark_group("counted");
    bench(&mut g, &t, "uninstrumented fn", || handle(black_box(1)));
    bench(&mut g, &t, "baseline: fn + static AtomicU64", || {
        handle_atomic(black_box(1))
    });
    bench(&mut g, &t, "#[counted] fn", || handle_counted(black_box(1)));
    g.finish();
    let (plain, floor, counted) = (
        t.ns("uninstrumented fn"),
        t.ns("baseline: fn + static AtomicU64"),
        t.ns("#[counted] fn"),
    );
    println!(
        "summary counted: fn {plain:.2} ns, fn+AtomicU64 {floor:.2} ns, #[counted] {counted:.2} ns; \
         #[counted]/baseline {:.2}x; overhead {:.2} ns vs {:.2} ns = {:.2}x (target <= 1.5x)",
        counted / floor,
        counted - plain,
        floor - plain,
        (counted - plain) / (floor - plain)
    );
}

// ---------------------------------------------------------------------------------------
// #[timed] vs two clock reads

#[inline(never)]
fn two_clock_reads() -> Duration {
    let start = Instant::now();
    let end = Instant::now();
    black_box(end - start)
}

#[inline(never)]
#[spectator::timed("bench.timed")]
fn handle_timed(x: u64) -> u64 {
    black_box(x)
}

#[inline(never)]
#[spectator::timed("bench.timedPercentiles", percentiles)]
fn handle_timed_percentiles(x: u64) -> u64 {
    black_box(x)
}

fn timed(c: &mut Criterion) {
    let t = Tally::default();
    let mut g = c.benchmark_group("timed");
    bench(&mut g, &t, "baseline: 2x Instant::now()", two_clock_reads);
    bench(&mut g, &t, "#[timed] fn", || handle_timed(black_box(1)));
    bench(&mut g, &t, "#[timed(percentiles)] fn", || {
        handle_timed_percentiles(black_box(1))
    });
    g.finish();
    let (clock, timed, pct) = (
        t.ns("baseline: 2x Instant::now()"),
        t.ns("#[timed] fn"),
        t.ns("#[timed(percentiles)] fn"),
    );
    println!(
        "summary timed: 2x Instant::now() {clock:.2} ns, #[timed] {timed:.2} ns ({:.2}x, +{:.2} ns; \
         target <= +10 ns), #[timed(percentiles)] {pct:.2} ns ({:.2}x, +{:.2} ns)",
        timed / clock,
        timed - clock,
        pct / clock,
        pct - clock
    );
}

// ---------------------------------------------------------------------------------------
// Dynamic lookup: spectator vs metrics + Prometheus exporter vs prometheus

fn lookup(c: &mut Criterion) {
    let registry = spectator::Registry::default();
    for i in 0..1_000 {
        registry.counter("other", &[("i", &i.to_string())]);
    }
    registry.counter(
        "server.numRequests",
        &[("status", "200"), ("method", "GET")],
    );
    // A running program polls every step; each poll folds new meters into one map.
    registry.measurements();

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no other recorder");
    for i in 0..1_000 {
        metrics::counter!("other", "i" => i.to_string()).increment(1);
    }

    let prom = prometheus::Registry::new();
    let vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("server_numRequests", "requests"),
        &["status", "method"],
    )
    .unwrap();
    prom.register(Box::new(vec.clone())).unwrap();
    let other =
        prometheus::IntCounterVec::new(prometheus::Opts::new("other", "other"), &["i"]).unwrap();
    prom.register(Box::new(other.clone())).unwrap();
    for i in 0..1_000 {
        other.with_label_values(&[&i.to_string()]).inc();
    }

    let t = Tally::default();
    let mut g = c.benchmark_group("dynamic lookup (1k other series)");
    let spectator_name = "spectator: registry.counter(name, 2 tags).increment()";
    let metrics_name = "metrics + prometheus exporter: counter!(name, 2 labels).increment(1)";
    let prometheus_name = "prometheus: IntCounterVec::with_label_values(2).inc()";
    bench(&mut g, &t, spectator_name, || {
        registry
            .counter(
                black_box("server.numRequests"),
                &[("status", "200"), ("method", "GET")],
            )
            .increment()
    });
    bench(&mut g, &t, metrics_name, || {
        metrics::counter!("server.numRequests", "status" => "200", "method" => "GET").increment(1)
    });
    bench(&mut g, &t, prometheus_name, || {
        vec.with_label_values(black_box(&["200", "GET"])).inc()
    });
    g.finish();
    let (s, m, p) = (
        t.ns(spectator_name),
        t.ns(metrics_name),
        t.ns(prometheus_name),
    );
    println!(
        "summary lookup: spectator {s:.2} ns, metrics+prometheus exporter {m:.2} ns \
         (spectator/metrics {:.2}x), prometheus {p:.2} ns (spectator/prometheus {:.2}x); target < 1x both",
        s / m,
        s / p
    );
    if !s.is_nan() {
        // The exporter saw the increments (a render is what its scrape endpoint would serve).
        assert!(handle.render().contains("server_numRequests"));
        assert!(vec.with_label_values(&["200", "GET"]).get() > 0);
    }
}

// ---------------------------------------------------------------------------------------
// One meter, 1 vs 2 threads

fn threads(c: &mut Criterion) {
    let r = spectator::Registry::default();
    let counter = r.counter("bench.counter", &[]);
    let timer = r.timer("bench.timer", &[]);
    let pct = r.percentile_timer("bench.pct", &[]);
    let gauge = r.gauge("bench.gauge", &[]);
    let d = Duration::from_micros(250);
    let mut lines = Vec::new();
    let meters: [(&str, &(dyn Fn() + Sync)); 5] = [
        // Shares one cache line: what plain atomics on one meter would do.
        ("baseline: static AtomicU64", &|| {
            FLOOR.fetch_add(1, Ordering::Relaxed);
        }),
        ("counter.increment", &|| counter.increment()),
        ("timer.record", &|| timer.record(black_box(d))),
        ("percentile_timer.record", &|| pct.record(black_box(d))),
        ("gauge.set", &|| gauge.set(black_box(3.0))),
    ];
    // Shares nothing between threads (a thread-local counter): the scaling this shared
    // machine delivers at that moment, measured next to each meter.
    let control = || {
        thread_local! {
            static OWN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        }
        OWN.with(|c| c.set(black_box(c.get() + 1)));
    };
    for (name, f) in meters {
        let t = Tally::default();
        let mut g = c.benchmark_group(format!("threads/{name}"));
        bench_threads(&mut g, &t, "control, 1 thread", 1, control);
        bench_threads(&mut g, &t, "control, 2 threads", 2, control);
        bench_threads(&mut g, &t, "1 thread", 1, f);
        bench_threads(&mut g, &t, "2 threads", 2, f);
        g.finish();
        let (one, two) = (t.ns("1 thread"), t.ns("2 threads"));
        let control = t.ns("control, 1 thread") / t.ns("control, 2 threads");
        let line = format!(
            "summary threads/{name}: 1 thread {one:.2} ns/op, 2 threads {two:.2} ns/op \
             (wall time / all ops); 2-thread throughput = {:.2}x 1 thread (target >= 1.5x); \
             control (nothing shared) {control:.2}x",
            one / two
        );
        if !one.is_nan() {
            println!("{line}");
            lines.push(line);
        }
    }
    println!("{}", lines.join("\n"));
}

criterion_group!(benches, counted, timed, lookup, threads);
criterion_main!(benches);
