//! Publisher costs: payload encoding (+ gzip) for 10k and 100k measurements, next to a
//! baseline of plain serde_json of the same data (uncompressed); one poll over 100k meters;
//! and the spectatord output's step (format the lines, send them over UDP) next to the Atlas
//! encode + gzip of the same step.
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

/// 100k counters, each updated once, published to a UDP socket on 127.0.0.1 that never reads
/// (the kernel drops what its buffer cannot hold; the sender never waits). The step's cost is
/// `publish` minus the poll both outputs share; the baseline is the Atlas encode + gzip of the
/// same measurements.
fn bench_spectatord(c: &mut Criterion) {
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let registry = spectator::Registry::builder()
        .output_location(&format!("udp://{}", sink.local_addr().unwrap()))
        .common_tags(&[("nf.app", "bench"), ("nf.process", "bench-1")])
        .build();
    let counters: Vec<spectator::Counter> = (0..100_000)
        .map(|i| {
            registry.counter(
                "server.requestCount",
                &[
                    ("endpoint", &format!("/api/v{}/users", i % 50)),
                    ("i", &i.to_string()),
                ],
            )
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bump = || counters.iter().for_each(spectator::Counter::increment);
    bump();
    let step = registry.measurements();
    let common = common_tags();

    // One quick figure of each, printed side by side (criterion's rows follow).
    let time = |f: &mut dyn FnMut()| {
        let started = std::time::Instant::now();
        for _ in 0..5 {
            f();
        }
        started.elapsed() / 5
    };
    let publish = time(&mut || {
        bump();
        black_box(rt.block_on(registry.publish()));
    });
    let poll = time(&mut || {
        bump();
        black_box(registry.measurements());
    });
    let atlas = time(&mut || {
        black_box(encode_all(&common, &step, true));
    });
    let lines = publish.saturating_sub(poll);
    eprintln!(
        "spectatord step of {} measurements: lines + UDP {lines:?} (publish {publish:?} - poll \
         {poll:?}) vs Atlas encode + gzip {atlas:?}: {:.2}x",
        step.len(),
        lines.as_secs_f64() / atlas.as_secs_f64()
    );

    let mut group = c.benchmark_group("spectatord");
    group.sample_size(10);
    group.throughput(Throughput::Elements(step.len() as u64));
    group.bench_function("publish_lines_udp_100k", |b| {
        b.iter(|| {
            bump();
            black_box(rt.block_on(registry.publish()))
        })
    });
    group.bench_function("poll_only_100k", |b| {
        b.iter(|| {
            bump();
            black_box(registry.measurements())
        })
    });
    group.bench_function("baseline_atlas_encode+gzip_100k", |b| {
        b.iter(|| black_box(encode_all(&common, &step, true)))
    });
    group.finish();
}

criterion_group!(benches, bench_encode, bench_poll, bench_spectatord);
criterion_main!(benches);
