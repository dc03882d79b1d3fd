//! Publisher costs: the whole `publish()` of 100k measurements (poll, encode, gzip, POST to a
//! loopback HTTP server) next to `serde_json::to_vec` of the same measurements as plain
//! `(tags, op, value)` tuples, with a `summary` line; payload encoding (+ gzip) for 10k and
//! 100k measurements next to plain serde_json of the same data (uncompressed); one poll over
//! 100k meters; and the spectatord output's step (format the lines, send them over UDP) next
//! to the Atlas encode + gzip of the same step.
//!
//! `cargo bench -p spectator --features receiver --bench publish` (without `receiver` the
//! `publish` group does not check that its payload decodes back to the measurements).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::Serialize;
use spectator::rules::sanitize;
use spectator::wire::{encode_batch, gzip};
use spectator::{Id, Measurement};

#[path = "../../benches/support/tally.rs"]
mod tally;
use tally::Tally;

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

fn refs(t: &[(String, String); 3]) -> [(&str, &str); 3] {
    t.each_ref().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// What the loopback server has seen: bytes of request bodies, and the bodies themselves while
/// `keep` is set.
#[derive(Default)]
struct Seen {
    body_bytes: AtomicUsize,
    keep: Mutex<Option<Vec<Vec<u8>>>>,
}

/// A minimal HTTP/1.1 server on 127.0.0.1: reads each request's head and `content-length`
/// body, answers 200 with no body. No decoding, so the publish's wall time is the client's.
fn loopback_server() -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("http://{}/api/v4/update", listener.local_addr().unwrap());
    let seen = Arc::new(Seen::default());
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = shared.clone();
            std::thread::spawn(move || serve(stream, &seen));
        }
    });
    (uri, seen)
}

fn serve(stream: TcpStream, seen: &Seen) {
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut len = 0usize;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        seen.body_bytes.fetch_add(len, Ordering::Relaxed);
        if let Some(bodies) = seen.keep.lock().unwrap().as_mut() {
            bodies.push(body);
        }
        if out
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .is_err()
        {
            return;
        }
    }
}

/// One measurement as the aggregator sees it: every tag (common ones and `name` included), op,
/// value.
type Tuple = (BTreeMap<String, String>, u8, f64);

/// What `ms` becomes on the wire, as plain tuples (sanitised, as the encoder does).
fn plain(common: &[(&str, &str)], ms: &[Measurement]) -> Vec<Tuple> {
    let owned = |s: &str| sanitize(s).into_owned();
    let mut v: Vec<Tuple> = ms
        .iter()
        .map(|m| {
            let mut tags: BTreeMap<String, String> =
                common.iter().map(|(k, v)| (owned(k), owned(v))).collect();
            tags.extend(m.id.tags().map(|(k, v)| (owned(k), owned(v))));
            tags.insert("name".into(), owned(m.id.name()));
            (tags, m.op.code(), m.value)
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// The measurements in `bodies` (gzipped Atlas payloads), self-metrics left out, and the
/// bodies' size before gzip.
#[cfg(feature = "receiver")]
fn decoded(bodies: &[Vec<u8>]) -> Option<(Vec<Tuple>, usize)> {
    let mut all: Vec<Tuple> = Vec::new();
    let mut size = 0;
    for body in bodies {
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut json)
            .unwrap();
        size += json.len();
        for m in spectator::receiver::decode_payload(&json).unwrap() {
            if !m.name().starts_with("spectator.") {
                all.push((m.tags, u8::try_from(m.op).unwrap(), m.value));
            }
        }
    }
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some((all, size))
}

#[cfg(not(feature = "receiver"))]
fn decoded(_: &[Vec<u8>]) -> Option<(Vec<Tuple>, usize)> {
    None
}

/// The whole `publish()` of a registry holding 100k measurements (20k timers, 4 statistics
/// each, and 20k counters), to a loopback HTTP server in batches of the default 10k, next to
/// `serde_json::to_vec` of the same 100k measurements as `(tags, op, value)` tuples (tags a
/// map of strings, common tags and `name` included): what a client without a string table,
/// batching or compression would at least spend. Before each timed publish every meter is
/// updated once (untimed), so every publish carries the same 100k measurements.
fn bench_publish(c: &mut Criterion) {
    const METERS: usize = 20_000;
    const COMMON: [(&str, &str); 3] = [
        ("nf.app", "bench"),
        ("nf.cluster", "bench-main"),
        ("nf.node", "i-0123456789"),
    ];
    let (uri, seen) = loopback_server();
    let registry = spectator::Registry::builder()
        .uri(&uri)
        .common_tags(&COMMON)
        .build();
    let tags = |i: usize| {
        [
            ("endpoint".to_string(), format!("/api/v{}/users", i % 50)),
            (
                "status".to_string(),
                ["200", "404", "500"][i % 3].to_string(),
            ),
            ("shard".to_string(), (i / 150).to_string()),
        ]
    };
    let timers: Vec<spectator::Timer> = (0..METERS)
        .map(|i| registry.timer("server.requestLatency", &refs(&tags(i))))
        .collect();
    let counters: Vec<spectator::Counter> = (0..METERS)
        .map(|i| registry.counter("server.requestCount", &refs(&tags(i))))
        .collect();
    let update = || {
        for (i, t) in timers.iter().enumerate() {
            t.record(Duration::from_nanos(
                1_000_000 + (i as u64 * 7919) % 50_000_000,
            ));
        }
        for (i, c) in counters.iter().enumerate() {
            c.add((i % 7 + 1) as f64);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // The same step twice: once polled (the expectation and the baseline's data), once
    // published with the bodies kept, to check they decode to exactly those measurements.
    update();
    let expected = plain(&COMMON, &registry.measurements());
    assert_eq!(expected.len(), 5 * METERS);
    update();
    *seen.keep.lock().unwrap() = Some(Vec::new());
    let report = rt.block_on(registry.publish());
    let bodies = seen.keep.lock().unwrap().take().unwrap_or_default();
    assert_eq!((report.sent, report.dropped), (expected.len(), 0));
    let gz: usize = bodies.iter().map(Vec::len).sum();
    match decoded(&bodies) {
        Some((got, json)) => {
            assert!(
                got == expected,
                "the payload does not decode to the polled measurements"
            );
            eprintln!(
                "publish: {} measurements in {} POSTs decode back exactly; {json} B of JSON",
                got.len(),
                bodies.len()
            );
        }
        None => eprintln!("publish: payload not checked (build with --features receiver)"),
    }
    let tuples: Vec<Tuple> = expected;
    let json_len = serde_json::to_vec(&tuples).unwrap().len();
    eprintln!(
        "publish: {} measurements: {gz} B gzipped in {} POSTs ({:.1} B per measurement); \
         serde_json tuples {json_len} B",
        tuples.len(),
        bodies.len(),
        gz as f64 / tuples.len() as f64
    );

    let t = Tally::default();
    let mut g = c.benchmark_group("publish");
    g.sample_size(10);
    g.throughput(Throughput::Elements(tuples.len() as u64));
    g.bench_function("publish_100k_loopback", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                update();
                let started = Instant::now();
                black_box(rt.block_on(registry.publish()));
                elapsed += started.elapsed();
            }
            t.add("publish", elapsed, iters);
            elapsed
        })
    });
    g.bench_function("baseline_serde_json_to_vec_100k", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(serde_json::to_vec(black_box(&tuples)).unwrap());
            }
            let elapsed = started.elapsed();
            t.add("serde_json", elapsed, iters);
            elapsed
        })
    });
    g.finish();
    let (p, s) = (t.ns("publish"), t.ns("serde_json"));
    println!(
        "summary publish: publish() of {n} measurements {p:.0} ns ({:.1} ns/measurement), \
         serde_json::to_vec of the same tuples {s:.0} ns ({:.1} ns/measurement); \
         publish/serde_json {:.2}x (target <= 1x)",
        p / tuples.len() as f64,
        s / tuples.len() as f64,
        p / s,
        n = tuples.len(),
    );
}

criterion_group!(
    benches,
    bench_publish,
    bench_encode,
    bench_poll,
    bench_spectatord
);
criterion_main!(benches);
