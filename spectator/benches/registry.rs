//! Costs of the registry and the recording path, each next to its baseline:
//! - `record/*`: a cached handle's record vs a bare `AtomicU64::fetch_add`;
//! - `lookup/*`: finding a meter by name and tags vs using a cached handle;
//! - `register/*`: registering N distinct meters, for N = 10k and 100k (linear scaling means
//!   the per-meter time stays flat);
//! - `poll`: one `measurements()` over 100k counters.
//!
//! `cargo bench -p spectator --bench registry`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use spectator::Registry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static FLOOR: AtomicU64 = AtomicU64::new(0);

fn record(c: &mut Criterion) {
    let r = Registry::default();
    let counter = r.counter("bench.counter", &[("k", "v")]);
    let timer = r.timer("bench.timer", &[]);
    let pct = r.percentile_timer("bench.pct", &[]);
    let summary = r.distribution_summary("bench.summary", &[]);
    let gauge = r.gauge("bench.gauge", &[]);
    let max_gauge = r.max_gauge("bench.maxGauge", &[]);
    let mut g = c.benchmark_group("record");
    g.bench_function("baseline: AtomicU64::fetch_add", |b| {
        b.iter(|| FLOOR.fetch_add(1, Ordering::Relaxed))
    });
    g.bench_function("counter.increment", |b| b.iter(|| counter.increment()));
    g.bench_function("counter.add", |b| b.iter(|| counter.add(black_box(1.5))));
    g.bench_function("timer.record", |b| {
        b.iter(|| timer.record(black_box(Duration::from_micros(250))))
    });
    g.bench_function("percentile_timer.record", |b| {
        b.iter(|| pct.record(black_box(Duration::from_micros(250))))
    });
    g.bench_function("distribution_summary.record", |b| {
        b.iter(|| summary.record(black_box(512.0)))
    });
    g.bench_function(
        "baseline: SystemTime::now (a precise wall-clock read)",
        |b| b.iter(|| black_box(std::time::SystemTime::now())),
    );
    let mut v = 0.0;
    g.bench_function("gauge.set", |b| {
        b.iter(|| {
            v += 1.0; // a new value each time: the store is not skipped
            gauge.set(black_box(v))
        })
    });
    g.bench_function("max_gauge.set", |b| {
        b.iter(|| max_gauge.set(black_box(3.0)))
    });
    g.bench_function("baseline: 2x Instant::now", |b| {
        b.iter(|| {
            let start = Instant::now();
            black_box(Instant::now() - start)
        })
    });
    g.bench_function("timer.stopwatch (2 clock reads + record)", |b| {
        b.iter(|| drop(black_box(timer.stopwatch())))
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let r = Registry::default();
    for i in 0..10_000 {
        r.counter("other", &[("i", &i.to_string())]);
    }
    let cached = r.counter(
        "server.numRequests",
        &[("status", "200"), ("method", "GET")],
    );
    let mut g = c.benchmark_group("lookup (registry of 10k meters)");
    g.bench_function("baseline: cached handle increment", |b| {
        b.iter(|| cached.increment())
    });
    g.bench_function("registry.counter(name, 2 tags).increment", |b| {
        b.iter(|| {
            r.counter(
                black_box("server.numRequests"),
                &[("status", "200"), ("method", "GET")],
            )
            .increment()
        })
    });
    g.finish();
}

fn register(c: &mut Criterion) {
    let mut g = c.benchmark_group("register");
    g.sample_size(10);
    let names: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    // ns per meter, [baseline, registry] for each size.
    let mut per_meter = Vec::new();
    for n in [10_000usize, 100_000] {
        let mut row = [0.0; 2];
        // Baseline: the naive registry, the same ids as strings (name and tags in one
        // `String`, the cheapest key a map of ids can have) into one growing `HashMap`
        // behind a `Mutex`, each with an `Arc<AtomicU64>` (whose reads would all take that
        // lock). Cache effects of a growing map hit both alike.
        let mut total = Duration::ZERO;
        let mut runs = 0u32;
        g.bench_function(
            format!("baseline: Mutex<HashMap<String, Arc<AtomicU64>>> insert, {n} ids"),
            |b| {
                b.iter_batched(
                    || Mutex::new(HashMap::<String, Arc<AtomicU64>>::new()),
                    |m| {
                        let start = Instant::now();
                        for name in &names[..n] {
                            let mut key = String::with_capacity(2 + 2 + name.len() + 2);
                            key.push('m');
                            key.push(':');
                            key.push('i');
                            key.push('=');
                            key.push_str(name);
                            m.lock().unwrap().entry(key).or_default();
                        }
                        total += start.elapsed();
                        runs += 1;
                        m
                    },
                    BatchSize::PerIteration,
                )
            },
        );
        row[0] = total.as_nanos() as f64 / f64::from(runs.max(1)) / n as f64;
        let mut total = Duration::ZERO;
        let mut runs = 0u32;
        g.bench_function(format!("{n} distinct counters"), |b| {
            b.iter_batched(
                Registry::default,
                |r| {
                    let start = Instant::now();
                    for name in &names[..n] {
                        r.counter("m", &[("i", name)]);
                    }
                    total += start.elapsed();
                    runs += 1;
                    r
                },
                BatchSize::PerIteration,
            )
        });
        row[1] = total.as_nanos() as f64 / f64::from(runs.max(1)) / n as f64;
        per_meter.push(row);
    }
    let [b10, r10] = per_meter[0];
    let [b100, r100] = per_meter[1];
    println!(
        "summary register, ns/meter: Mutex<HashMap> {b10:.0} at 10k, {b100:.0} at 100k (growth {:.2}); \
         registry {r10:.0} at 10k, {r100:.0} at 100k (growth {:.2}; 1.0 = linear); \
         registry/baseline {:.2}x at 10k, {:.2}x at 100k (target <= 2x)",
        b100 / b10,
        r100 / r10,
        r10 / b10,
        r100 / b100
    );
    g.finish();
}

fn poll(c: &mut Criterion) {
    let r = Registry::default();
    let handles: Vec<_> = (0..100_000)
        .map(|i| r.counter("m", &[("i", &i.to_string())]))
        .collect();
    let mut g = c.benchmark_group("poll");
    g.sample_size(10);
    g.bench_function("measurements() over 100k counters, all active", |b| {
        b.iter_batched(
            || handles.iter().for_each(|h| h.increment()),
            |_| r.measurements(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, record, lookup, register, poll);
criterion_main!(benches);
