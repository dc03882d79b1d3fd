//! Publisher costs: payload encoding (+ gzip) for 10k and 100k measurements, next to a
//! baseline of plain serde_json of the same data (uncompressed), and one poll over 100k meters.
//!
//! `cargo bench -p spectator --bench publish`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Serialize;
use spectator::wire::{encode_batch, gzip};
use spectator::{Id, Measurement};

const BATCH: usize = 10_000;

fn measurements(n: usize) -> Vec<Measurement> {
    const STATS: [&str; 4] = ["count", "totalTime", "totalOfSquares", "max"];
    (0..n)
        .map(|i| {
            let id = Id::new(
                "server.requestLatency",
                &[
                    ("statistic", STATS[i % 4]),
                    ("endpoint", &format!("/api/v{}/users", i / 4 % 50)),
                    ("status", ["200", "404", "500"][i % 3]),
                    ("shard", &(i / 600).to_string()),
                ],
            );
            Measurement::new(id, (i as f64) * 0.37 + 0.001)
        })
        .collect()
}

fn common_tags() -> Vec<(String, String)> {
    vec![
        ("nf.app".into(), "bench".into()),
        ("nf.cluster".into(), "bench-main".into()),
        ("nf.node".into(), "i-0123456789".into()),
    ]
}

/// What a naive client would send: each measurement as an object, no string table.
#[derive(Serialize)]
struct Plain<'a> {
    tags: Vec<(&'a str, &'a str)>,
    op: u8,
    value: f64,
}

fn baseline(common: &[(String, String)], ms: &[Measurement]) -> Vec<u8> {
    let plain: Vec<Plain<'_>> = ms
        .iter()
        .map(|m| {
            let mut tags: Vec<(&str, &str)> = common
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            tags.extend(m.id.tags());
            tags.push(("name", m.id.name()));
            Plain {
                tags,
                op: m.op.code(),
                value: m.value,
            }
        })
        .collect();
    serde_json::to_vec(&plain).unwrap_or_default()
}

fn encode_all(common: &[(String, String)], ms: &[Measurement], compress: bool) -> usize {
    let mut total = 0;
    let mut json = Vec::new();
    for chunk in ms.chunks(BATCH) {
        json.clear();
        encode_batch(common, chunk, &mut json);
        total += if compress {
            gzip(&json).len()
        } else {
            json.len()
        };
    }
    total
}

fn bench_encode(c: &mut Criterion) {
    let common = common_tags();
    let mut group = c.benchmark_group("encode");
    group.sample_size(10);
    for n in [10_000usize, 100_000] {
        let ms = measurements(n);
        group.throughput(Throughput::Elements(n as u64));
        let json_len = encode_all(&common, &ms, false);
        let gz_len = encode_all(&common, &ms, true);
        let base_len: usize = ms.chunks(BATCH).map(|c| baseline(&common, c).len()).sum();
        eprintln!(
            "{n} measurements: payload {json_len} B, gzipped {gz_len} B, \
             serde_json baseline {base_len} B (uncompressed)"
        );
        group.bench_with_input(BenchmarkId::new("payload_json", n), &ms, |b, ms| {
            b.iter(|| black_box(encode_all(&common, ms, false)))
        });
        group.bench_with_input(BenchmarkId::new("payload_json+gzip", n), &ms, |b, ms| {
            b.iter(|| black_box(encode_all(&common, ms, true)))
        });
        group.bench_with_input(BenchmarkId::new("baseline_serde_json", n), &ms, |b, ms| {
            b.iter(|| {
                black_box(
                    ms.chunks(BATCH)
                        .map(|c| baseline(&common, c).len())
                        .sum::<usize>(),
                )
            })
        });
    }
    group.finish();
}

fn bench_poll(c: &mut Criterion) {
    let registry = spectator::Registry::default();
    // 100k meters: counters (1 measurement each when updated).
    let counters: Vec<spectator::Counter> = (0..100_000)
        .map(|i| registry.counter("bench.poll", &[("i", &i.to_string())]))
        .collect();
    let mut group = c.benchmark_group("poll");
    group.sample_size(10);
    group.throughput(Throughput::Elements(counters.len() as u64));
    group.bench_function("measurements_100k_meters_all_updated", |b| {
        b.iter(|| {
            for c in &counters {
                c.increment();
            }
            black_box(registry.measurements().len())
        })
    });
    group.bench_function("increment_100k_meters_only", |b| {
        b.iter(|| {
            for c in &counters {
                c.increment();
            }
        })
    });
    group.bench_function("measurements_100k_meters_idle", |b| {
        b.iter(|| black_box(registry.measurements().len()))
    });
    group.finish();
}

criterion_group!(benches, bench_encode, bench_poll);
criterion_main!(benches);
