//! Fault injection against the loopback aggregator: the aggregator down at start, down mid-run
//! then back, slower than the timeout, 429 storms, 5xx, 202 partials, connection resets and
//! responses that never end.
//!
//! Every test runs recording threads all along and checks that
//! - recording never blocks: the slowest `increment()` (and registry lookup) seen while the
//!   publisher is stuck stays far below the publisher's timeout;
//! - the background publisher recovers: after the fault, the loop itself (not only the final
//!   flush) gets a batch accepted;
//! - the totals accepted by the aggregator equal the totals recorded, minus exactly what the
//!   client reported as dropped; an outage shorter than the pending bound drops nothing.
//!
//! Steps and timeouts are short (200 ms / 150 ms) so that each test takes a second or two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spectator::testing::aggregator::{Aggregator, ReceivedMeasurement, ReceivedRequest, Reply};
use spectator::{PublishReport, Registry};

const FREQUENCY: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(150);
/// Slowest acceptable `increment()` / lookup. A recording path that waited for the publisher
/// would take at least one TIMEOUT (and the hangs below last seconds).
const MAX_RECORD_LATENCY: Duration = Duration::from_millis(50);
/// Upper bound for anything the tests wait for.
const PATIENCE: Duration = Duration::from_secs(10);

const HANDLE: &str = "fault.handle";
const LOOKUP: &str = "fault.lookup";

fn registry(agg: &Aggregator) -> Registry {
    Registry::builder()
        .uri(&agg.uri())
        .frequency(FREQUENCY)
        .timeout(TIMEOUT)
        .common_tags(&[("nf.app", "faults")])
        .build()
}

/// Threads that record until stopped, timing every call.
struct Recorders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(u64, Duration)>>,
}

/// What the recorders did: calls per counter, slowest call.
struct Recorded {
    calls: u64,
    slowest: Duration,
}

impl Recorders {
    fn start(r: &Registry, n: usize) -> Recorders {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|t| {
                let (r, stop) = (r.clone(), stop.clone());
                std::thread::spawn(move || {
                    let handle = r.counter(HANDLE, &[]);
                    let tag = t.to_string();
                    let (mut calls, mut slowest) = (0u64, Duration::ZERO);
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        handle.increment();
                        r.counter(LOOKUP, &[("thread", &tag)]).increment();
                        slowest = slowest.max(t0.elapsed());
                        calls += 1;
                        // Not a busy loop: leave the cores to the publisher and aggregator.
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    (calls, slowest)
                })
            })
            .collect();
        Recorders { stop, threads }
    }

    fn finish(self) -> Recorded {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Recorded {
            calls: 0,
            slowest: Duration::ZERO,
        };
        for t in self.threads {
            let (calls, slowest) = t.join().expect("recording thread panicked");
            out.calls += calls;
            out.slowest = out.slowest.max(slowest);
        }
        assert!(
            out.slowest < MAX_RECORD_LATENCY,
            "a recording call took {:?} (of {} calls)",
            out.slowest,
            out.calls
        );
        assert!(out.calls > 0);
        out
    }
}

fn is_user(m: &ReceivedMeasurement) -> bool {
    !m.name().starts_with("spectator.")
}

/// `spectator.measurements{id=dropped}` values that reached the aggregator.
fn dropped_self_metric(ms: &[ReceivedMeasurement]) -> f64 {
    ms.iter()
        .filter(|m| {
            m.name() == "spectator.measurements"
                && m.tags.get("id").map(String::as_str) == Some("dropped")
        })
        .map(|m| m.value)
        .sum()
}

fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + PATIENCE;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Waits until a request after the first `after` ones was answered 200 with user data in it:
/// the loop recovered on its own.
fn wait_for_recovery(agg: &Aggregator, after: usize) {
    let recovered = wait_until(|| {
        agg.requests()
            .iter()
            .skip(after)
            .any(|q| q.status == Some(200) && q.accepted.iter().any(is_user))
    });
    assert!(
        recovered,
        "the publisher did not recover: {:?}",
        statuses(&agg.requests())
    );
}

fn statuses(reqs: &[ReceivedRequest]) -> Vec<Option<u16>> {
    reqs.iter().map(|q| q.status).collect()
}

/// Stops recording and publishing, then checks that every count reached the aggregator and
/// nothing was reported dropped.
fn finish_lossless(agg: &Aggregator, rec: Recorders, p: spectator::Publisher) {
    let recorded = rec.finish();
    let t0 = Instant::now();
    let report = p.stop();
    assert!(t0.elapsed() < PATIENCE, "stop took {:?}", t0.elapsed());
    assert_lossless(agg, &report, recorded.calls);
}

fn assert_lossless(agg: &Aggregator, report: &PublishReport, calls: u64) {
    assert_eq!((report.dropped, report.pending), (0, 0), "{report:?}");
    let accepted = agg.accepted();
    assert_eq!(
        dropped_self_metric(&accepted),
        0.0,
        "nothing may be dropped"
    );
    assert_eq!(agg.accepted_total(HANDLE), calls as f64, "handle total");
    assert_eq!(agg.accepted_total(LOOKUP), calls as f64, "lookup total");
}

/// Runs a scripted fault: `replies` for the next requests, recording all along, then checks
/// recovery and totals. Returns the requests the aggregator saw.
fn scripted_fault(replies: &[(Reply, usize)]) -> Vec<ReceivedRequest> {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg);
    let rec = Recorders::start(&r, 2);
    let p = r.start().unwrap();
    let mut faulty = 0;
    for (reply, times) in replies {
        agg.script(reply.clone(), *times);
        faulty += times;
    }
    assert!(
        agg.wait_for_requests(faulty, PATIENCE),
        "the scripted replies were not all used: {:?}",
        statuses(&agg.requests())
    );
    wait_for_recovery(&agg, faulty);
    finish_lossless(&agg, rec, p);
    agg.requests()
}

#[test]
fn backend_down_at_start() {
    let agg = Aggregator::start_down().unwrap();
    let r = registry(&agg);
    let rec = Recorders::start(&r, 2);
    let p = r.start().unwrap();
    // About five steps of refused connections.
    std::thread::sleep(5 * FREQUENCY);
    assert!(agg.requests().is_empty());
    agg.up().unwrap();
    wait_for_recovery(&agg, 0);
    finish_lossless(&agg, rec, p);
}

#[test]
fn backend_down_mid_run_then_back() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg);
    let rec = Recorders::start(&r, 2);
    let p = r.start().unwrap();
    wait_for_recovery(&agg, 0);
    agg.down();
    let before = agg.requests().len();
    std::thread::sleep(5 * FREQUENCY);
    agg.up().unwrap();
    wait_for_recovery(&agg, before);
    finish_lossless(&agg, rec, p);
}

#[test]
fn slow_beyond_the_timeout() {
    // Each hang outlives the whole test unless the client gives up.
    let reqs = scripted_fault(&[(Reply::Hang(Duration::from_secs(30)), 4)]);
    assert_eq!(&statuses(&reqs)[..4], &[None; 4]);
}

#[test]
fn storm_of_429s() {
    let reqs = scripted_fault(&[(Reply::Status(429), 12)]);
    assert!(statuses(&reqs)[..12].iter().all(|s| *s == Some(429)));
}

#[test]
fn server_errors() {
    scripted_fault(&[
        (Reply::Status(500), 3),
        (Reply::Status(502), 3),
        (Reply::Status(503), 3),
        (Reply::Status(504), 3),
    ]);
}

#[test]
fn connection_resets() {
    scripted_fault(&[(Reply::Reset, 8)]);
}

#[test]
fn responses_that_never_end() {
    // A 202 whose body never ends must not hold the publisher past its timeout (the batch was
    // accepted: an unreadable 202 body reports no errors); a never-ending 503 is retried.
    let reqs = scripted_fault(&[
        (Reply::Endless(202), 2),
        (Reply::Endless(503), 2),
        (Reply::Endless(200), 1),
    ]);
    assert_eq!(
        &statuses(&reqs)[..5],
        &[Some(202), Some(202), Some(503), Some(503), Some(200)]
    );
}

#[test]
fn partial_answers_drop_exactly_what_is_reported() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg);
    let rec = Recorders::start(&r, 2);
    let p = r.start().unwrap();
    // Partial answers interleaved with normal ones.
    for _ in 0..3 {
        agg.script(Reply::Partial(1), 1);
        agg.script(Reply::Validate, 1);
    }
    assert!(agg.wait_for_requests(6, PATIENCE));
    wait_for_recovery(&agg, 6);
    let recorded = rec.finish();
    let final_report = p.stop();
    let reqs = agg.requests();
    assert!(reqs.iter().all(|q| matches!(q.status, Some(200 | 202))));

    // What the aggregator turned away, measurement by measurement.
    let rejected: Vec<ReceivedMeasurement> = reqs
        .iter()
        .flat_map(|q| {
            let payload = q.payload.clone().unwrap();
            payload
                .into_iter()
                .filter(|m| !q.accepted.contains(m))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(rejected.len(), 3);
    // What the client reported as dropped: the self-metrics it sent (whether the aggregator
    // then kept them or not) plus the last publish's report, whose self-metrics never go out.
    let sent_self_metrics: Vec<ReceivedMeasurement> = reqs
        .iter()
        .flat_map(|q| q.payload.clone().unwrap())
        .collect();
    let reported = dropped_self_metric(&sent_self_metrics) + final_report.dropped as f64;
    assert_eq!(reported, rejected.len() as f64);
    // User totals: accepted plus rejected is everything recorded.
    let rejected_total = |name: &str| -> f64 {
        rejected
            .iter()
            .filter(|m| m.name() == name)
            .map(|m| m.value)
            .sum()
    };
    for name in [HANDLE, LOOKUP] {
        assert_eq!(
            agg.accepted_total(name) + rejected_total(name),
            recorded.calls as f64,
            "{name}"
        );
    }
}

#[test]
fn outage_longer_than_the_pending_bound_drops_the_oldest_and_says_so() {
    let agg = Aggregator::start_down().unwrap();
    // Pending bound: 10 batches of 1 measurement. The step bounds each publish's retries.
    let r = Registry::builder()
        .uri(&agg.uri())
        .frequency(FREQUENCY)
        .timeout(TIMEOUT)
        .batch_size(1)
        .build();
    let c = r.counter("fault.overflow", &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut reports = Vec::new();
    let mut values = Vec::new();
    for i in 1..=15 {
        c.add(f64::from(i));
        values.push(f64::from(i));
        reports.push(rt.block_on(r.publish()));
    }
    assert_eq!(reports[9].pending, 10, "{:?}", reports[9]);
    assert_eq!(reports[9].dropped, 0);
    assert!(reports[14].dropped > 0, "{:?}", reports[14]);
    agg.up().unwrap();
    for _ in 0..20 {
        let report = rt.block_on(r.publish());
        let done = report.pending == 0;
        reports.push(report);
        if done {
            break;
        }
    }
    assert_eq!(reports.last().unwrap().pending, 0, "{reports:?}");

    let accepted = agg.accepted();
    let user: Vec<f64> = accepted
        .iter()
        .filter(|m| is_user(m))
        .map(|m| m.value)
        .collect();
    // The oldest values were dropped, the rest arrived in order.
    let lost = values.len() - user.len();
    assert!(lost > 0);
    assert_eq!(user, values[lost..]);
    // Every measurement not accepted was reported dropped: the user values lost plus the
    // self-metrics lost. Each publish's report becomes one self-metric measurement per
    // non-zero count at the next publish (the last report's are still in the registry).
    let self_made: usize = reports[..reports.len() - 1]
        .iter()
        .map(|r| {
            [
                r.sent,
                r.dropped_validation,
                r.dropped_http,
                r.dropped_other,
            ]
            .iter()
            .filter(|&&n| n > 0)
            .count()
        })
        .sum();
    let self_accepted = accepted.iter().filter(|m| !is_user(m)).count();
    let dropped: usize = reports.iter().map(|r| r.dropped).sum();
    assert_eq!(dropped, lost + (self_made - self_accepted), "{reports:?}");
}

/// Graceful shutdown: threads record, then the publisher is shut down; every count arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_every_count_from_many_threads() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg);
    let p = r.start().unwrap();
    let r2 = r.clone();
    let recorded = tokio::task::spawn_blocking(move || record_from_threads(&r2, 4, 20_000))
        .await
        .unwrap();
    let report = p.shutdown().await;
    assert_eq!((report.dropped, report.pending), (0, 0), "{report:?}");
    check_threads_totals(&agg, recorded);
}

#[test]
fn stop_delivers_every_count_from_many_threads() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg);
    let p = r.start().unwrap();
    let recorded = record_from_threads(&r, 4, 20_000);
    let report = p.stop();
    assert_eq!((report.dropped, report.pending), (0, 0), "{report:?}");
    check_threads_totals(&agg, recorded);
}

#[test]
fn stop_against_a_hung_aggregator_returns_and_keeps_the_data() {
    let agg = Aggregator::start().unwrap();
    let r = registry(&agg);
    let p = r.start().unwrap();
    let c = r.counter("fault.stop", &[]);
    c.add(7.0);
    agg.script(Reply::Hang(Duration::from_secs(30)), 100);
    let t0 = Instant::now();
    let report = p.stop();
    // At most the step the loop was in plus the final publish's retries.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(report.sent, 0);
    assert!(report.pending > 0, "{report:?}");
    // Nothing was lost: the next publish, once the aggregator answers, delivers it.
    agg.clear_script();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(r.publish());
    assert_eq!((report.pending, report.dropped), (0, 0), "{report:?}");
    assert_eq!(agg.accepted_total("fault.stop"), 7.0);
}

/// Totals recorded by [`record_from_threads`].
struct ThreadTotals {
    ops: u64,
    amount: f64,
}

/// `threads` threads each make `ops` records on a counter (handle and lookup), a timer and a
/// distribution summary, while the publisher runs.
fn record_from_threads(r: &Registry, threads: u64, ops: u64) -> ThreadTotals {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let r = r.clone();
            std::thread::spawn(move || {
                let c = r.counter("shutdown.counter", &[]);
                let timer = r.timer("shutdown.timer", &[]);
                let s = r.distribution_summary("shutdown.summary", &[]);
                let mut amount = 0.0;
                for i in 0..ops {
                    c.increment();
                    r.counter("shutdown.lookup", &[("t", &(t % 2).to_string())])
                        .increment();
                    timer.record(Duration::from_micros(i % 100));
                    let v = ((i + t) % 10) as f64;
                    s.record(v);
                    amount += v;
                }
                amount
            })
        })
        .collect();
    let amount = handles.into_iter().map(|h| h.join().unwrap()).sum();
    ThreadTotals {
        ops: threads * ops,
        amount,
    }
}

fn check_threads_totals(agg: &Aggregator, t: ThreadTotals) {
    let accepted = agg.accepted();
    let sum = |name: &str, stat: &str| -> f64 {
        accepted
            .iter()
            .filter(|m| m.name() == name && m.tags["statistic"] == stat)
            .map(|m| m.value)
            .sum()
    };
    let n = t.ops as f64;
    assert_eq!(sum("shutdown.counter", "count"), n);
    assert_eq!(sum("shutdown.lookup", "count"), n);
    assert_eq!(sum("shutdown.timer", "count"), n);
    assert_eq!(sum("shutdown.summary", "count"), n);
    assert_eq!(sum("shutdown.summary", "totalAmount"), t.amount);
    assert_eq!(dropped_self_metric(&accepted), 0.0);
}
