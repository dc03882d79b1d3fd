//! What the IPC server layer (`spectator::ipc::IpcServerLayer`) adds to a call, next to the
//! most used Prometheus HTTP-metrics layer for axum (`axum-prometheus`, recording through the
//! `metrics` facade into `metrics-exporter-prometheus`), each comparison one criterion group:
//!
//! - `ipc/no-op service`: a `tower::service_fn` that answers at once, bare, with the IPC layer
//!   and with `axum-prometheus`'s layer; a call is: build the request, call the service, poll
//!   the future (ready at once), read the response body to its end, drop the response;
//! - `ipc/axum router`: the same around an axum `Router` with one route `/users/{id}`, so
//!   that both layers see the route template (`MatchedPath`).
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time, so
//! that other processes on a shared machine do not inflate them. Every call is on a warm
//! endpoint (the meters exist). Each group also times the bare
//! service with two reads of the registry's clock around each call (`Clock::interval_time`,
//! as timers and the layer read it): the floor of any layer that times calls (on a loaded VM a clock read can cost more than the rest of the layer).
//! After each group a `summary:` line gives ns/op (median of the samples) and what each layer
//! adds.
//!
//! `cargo bench --bench ipc -- --warm-up-time 1 --measurement-time 3`

use axum::body::{Body, Bytes};
use axum::routing::get;
use axum::Router;
use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use http_body_util::Empty;
use spectator::ipc::IpcServerLayer;
use spectator::Registry;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;
#[cfg(not(unix))]
use std::time::Instant;
use tower::{Layer, Service};

#[path = "support/tally.rs"]
mod tally;
use tally::Tally;

/// This thread's CPU time: unlike wall time, it does not count the time the thread waits
/// while other processes hold the cores, so it stays meaningful on a shared, loaded machine.
#[cfg(unix)]
fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(unix))]
fn cpu_now() -> Duration {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

fn noop_waker() -> Waker {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        |_| RawWaker::new(std::ptr::null(), &VTABLE),
        |_| {},
        |_| {},
        |_| {},
    );
    // SAFETY: every function of the vtable ignores the (null) data pointer.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Polls `f` to completion with a no-op waker (the services here never wait).
fn run<F: Future>(f: F, cx: &mut Context<'_>) -> F::Output {
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return v;
        }
    }
}

/// One call: request, service, response body read to its end.
fn one_call<S, B>(service: &mut S, cx: &mut Context<'_>) -> usize
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    let mut request = http::Request::new(Body::empty());
    *request.uri_mut() = http::Uri::from_static("/users/7");
    let response = run(service.call(request), cx).expect("the service answers");
    let mut body = pin!(response.into_body());
    let mut frames = 0;
    while let Poll::Ready(Some(_)) = body.as_mut().poll_frame(cx) {
        frames += 1;
    }
    frames
}

fn bench_service<S, B>(g: &mut BenchmarkGroup<'_, WallTime>, t: &Tally, name: &str, service: S)
where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    bench_timed_service(g, t, name, service, None)
}

/// As [`bench_service`]; with a registry, each call also reads its clock twice, around the
/// call (the floor of any layer that times calls).
fn bench_timed_service<S, B>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    t: &Tally,
    name: &str,
    mut service: S,
    clock: Option<&Registry>,
) where
    S: Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
{
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    // Warm the endpoint (and check the service is ready).
    assert!(matches!(service.poll_ready(&mut cx), Poll::Ready(Ok(()))));
    one_call(&mut service, &mut cx);
    let clock = clock.map(|r| std::sync::Arc::clone(r.clock()));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = cpu_now();
            for _ in 0..iters {
                match &clock {
                    None => {
                        black_box(one_call(&mut service, &mut cx));
                    }
                    Some(clock) => {
                        let t0 = clock.interval_time();
                        black_box(one_call(&mut service, &mut cx));
                        black_box(clock.interval_time().saturating_sub(t0));
                    }
                }
            }
            let elapsed = cpu_now().saturating_sub(start);
            t.add(name, elapsed, iters);
            elapsed
        })
    });
}

fn summary(t: &Tally, group: &str) {
    let bare = t.ns("bare");
    let clocks = t.ns("bare + 2 clock reads");
    let ipc = t.ns("IpcServerLayer");
    let prom = t.ns("axum-prometheus");
    println!(
        "summary: {group}: bare {bare:.1} ns, bare + 2 clock reads {clocks:.1} ns (+{:.1} ns), \
         IpcServerLayer {ipc:.1} ns (+{:.1} ns, of which {:.1} ns beyond the clock reads), \
         axum-prometheus {prom:.1} ns (+{:.1} ns); added cost ratio ipc/prometheus {:.2}x",
        clocks - bare,
        ipc - bare,
        ipc - clocks,
        prom - bare,
        (ipc - bare) / (prom - bare)
    );
}

fn prometheus_layer() -> axum_prometheus::PrometheusMetricLayer<'static> {
    use std::sync::OnceLock;
    // The layer installs the global `metrics` recorder: once per process.
    static PAIR: OnceLock<axum_prometheus::PrometheusMetricLayer<'static>> = OnceLock::new();
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    PAIR.get_or_init(|| {
        // It spawns its recorder's upkeep task, which needs a tokio runtime. A current-thread
        // one runs tasks only inside `block_on`, so the task stays out of the measurements.
        let runtime = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime")
        });
        let _entered = runtime.enter();
        axum_prometheus::PrometheusMetricLayer::pair().0
    })
    .clone()
}

fn no_op_service(c: &mut Criterion) {
    let t = Tally::default();
    let registry = Registry::default();
    let noop = tower::service_fn(|_req: http::Request<Body>| {
        std::future::ready(Ok::<_, Infallible>(http::Response::new(
            Empty::<Bytes>::new(),
        )))
    });
    let mut g = c.benchmark_group("ipc/no-op service");
    bench_service(&mut g, &t, "bare", noop);
    bench_timed_service(&mut g, &t, "bare + 2 clock reads", noop, Some(&registry));
    bench_service(
        &mut g,
        &t,
        "IpcServerLayer",
        IpcServerLayer::with_registry(registry.clone()).layer(noop),
    );
    bench_service(
        &mut g,
        &t,
        "axum-prometheus",
        prometheus_layer().layer(noop),
    );
    g.finish();
    summary(&t, "no-op service");
}

fn axum_router(c: &mut Criterion) {
    let t = Tally::default();
    let registry = Registry::default();
    let router = || Router::new().route("/users/{id}", get(|| std::future::ready("alice")));
    let mut g = c.benchmark_group("ipc/axum router");
    bench_service(&mut g, &t, "bare", router());
    bench_timed_service(
        &mut g,
        &t,
        "bare + 2 clock reads",
        router(),
        Some(&registry),
    );
    bench_service(
        &mut g,
        &t,
        "IpcServerLayer",
        router().layer(IpcServerLayer::with_registry(registry.clone())),
    );
    bench_service(
        &mut g,
        &t,
        "axum-prometheus",
        router().layer(prometheus_layer()),
    );
    g.finish();
    summary(&t, "axum router");
}

criterion_group!(benches, no_op_service, axum_router);
criterion_main!(benches);
