//! An instrumented HTTP service (axum): every call reported in Netflix's standard IPC shape by
//! one `.layer(IpcServerLayer::new())` (`ipc.server.call{ipc.endpoint=/users/{id},
//! ipc.status=success|...,http.status=200,...}`, `ipc.server.inflight`), the driving client's
//! calls by `IpcClientLayer` (`ipc.client.call`), handlers timed with `#[timed]`/`#[counted]`,
//! status counters and gauges declared with `metrics!`.
//!
//! ```sh
//! cargo run --example http_service                   # drives itself with local requests, then exits
//! cargo run --example http_service -- --serve        # serves 127.0.0.1:3000 until Ctrl-C
//! curl http://127.0.0.1:3000/users/7                 # (in another terminal)
//! ```
//!
//! As in the quickstart, with no `SPECTATOR_URI` the metrics go to a local Atlas-compatible
//! receiver whose table is redrawn every step; with `SPECTATOR_URI` set they go there.
//! Options: `--serve`, `--port N` (with `--serve`, default 3000), `--requests N` (without
//! `--serve`, default 1000).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use spectator::ipc::{IpcClientLayer, IpcEndpoint, IpcServerLayer};
use spectator::receiver::{Aggregator, LiveTable};
use spectator::{counted, timed};
use tower::{Layer, Service, ServiceExt};

// ---------------------------------------------------------------------------------------------
// The service.

spectator::metrics! {
    /// Responses by status code.
    static OK: Counter = "server.numRequests", status = "200";
    static NOT_FOUND: Counter = "server.numRequests", status = "404";
    /// Requests being handled right now.
    static IN_FLIGHT: Gauge = "server.inFlight";
    /// Size of each response body, in bytes.
    static RESPONSE_SIZE: DistributionSummary = "server.responseSize";
}

static IN_FLIGHT_NOW: AtomicI64 = AtomicI64::new(0);

/// Counts the requests in progress for the whole time it lives.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        IN_FLIGHT.set((IN_FLIGHT_NOW.fetch_add(1, Ordering::Relaxed) + 1) as f64);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.set((IN_FLIGHT_NOW.fetch_sub(1, Ordering::Relaxed) - 1) as f64);
    }
}

/// `GET /users/{id}`: a PercentileTimer tagged `endpoint=users` and `result=success|failure`.
#[timed("server.requestLatency", endpoint = "users", percentiles)]
async fn user(Path(id): Path<u32>) -> Result<String, StatusCode> {
    let _in_flight = InFlight::enter();
    let user = spectator::time!("db.query", table = "users", { lookup(id).await });
    match user {
        Some(name) => {
            OK.increment();
            let body = format!("{{\"id\":{id},\"name\":\"{name}\"}}\n");
            RESPONSE_SIZE.record(body.len() as f64);
            Ok(body)
        }
        None => {
            NOT_FOUND.increment();
            Err(StatusCode::NOT_FOUND)
        }
    }
}

/// `GET /health`: counted as `server.health`.
#[counted("server.health")]
async fn health() -> &'static str {
    OK.increment();
    "ok\n"
}

/// A pretend database: users 1..=100 exist; lookups take 1 to 30 ms.
async fn lookup(id: u32) -> Option<String> {
    let ms = 1 + u64::from(id.wrapping_mul(2_654_435_761) % 30);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    (1..=100).contains(&id).then(|| format!("user{id}"))
}

fn app() -> Router {
    Router::new()
        .route("/users/{id}", get(user))
        .route("/health", get(health))
        // ipc.server.call and ipc.server.inflight for every route (and the 404 fallback), into
        // spectator::global(); after the routes, so that it sees their templates.
        .layer(IpcServerLayer::new())
}

// ---------------------------------------------------------------------------------------------
// Plumbing: options, where to publish, driving or serving, the live table.

struct Options {
    serve: bool,
    port: u16,
    requests: u32,
}

fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!(
                "{msg}\nusage: cargo run --example http_service [-- --serve [--port N]] \
                 [--requests N]"
            );
            std::process::exit(2);
        }
    };

    // Without SPECTATOR_URI, publish every second to a local receiver (set up before any
    // thread starts, so that changing the environment is safe).
    let listener = if std::env::var("SPECTATOR_URI").is_ok_and(|u| !u.trim().is_empty()) {
        println!("SPECTATOR_URI is set: publishing there (no local receiver).");
        None
    } else {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver's port");
        let addr = l.local_addr().expect("local address");
        std::env::set_var("SPECTATOR_URI", format!("http://{addr}/api/v4/update"));
        if std::env::var_os("SPECTATOR_FREQUENCY").is_none() {
            std::env::set_var("SPECTATOR_FREQUENCY", "1");
        }
        Some(l)
    };
    let registry = spectator::global(); // reads the environment, starts publishing
    let receiver = listener.map(|l| Aggregator::from_listener(l).expect("start the receiver"));

    // The live table runs on a thread of its own until `done`.
    let done = Arc::new(AtomicBool::new(false));
    let display = receiver.map(|receiver| {
        let done = Arc::clone(&done);
        let step = registry.config().frequency;
        let title = if options.serve {
            format!(
                "http_service on http://127.0.0.1:{} (Ctrl-C to stop)",
                options.port
            )
        } else {
            "http_service".to_string()
        };
        std::thread::spawn(move || {
            let mut table = LiveTable::new(step).with_title(&title);
            while !done.load(Ordering::Relaxed) {
                table.push_step(&receiver.next_requests(step.mul_f64(1.5)));
                table.print();
            }
            (receiver, table)
        })
    });

    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        if options.serve {
            serve(options.port).await
        } else {
            drive(options.requests).await
        }
    });

    // The final publish, then the table's last step.
    spectator::stop_global();
    done.store(true, Ordering::Relaxed);
    if let Some(display) = display {
        let (receiver, mut table) = display.join().expect("display thread");
        // The display thread may have shown the final publish already.
        let last = receiver.next_requests(Duration::from_millis(300));
        if !last.is_empty() {
            table.push_step(&last);
            table.print();
        }
        println!("http_service summary: {}", table.summary());
    }
}

/// Serves on 127.0.0.1:`port` until Ctrl-C.
async fn serve(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
    axum::serve(listener, app())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .expect("server error");
}

/// Serves on a free local port and sends it `n` requests from 8 concurrent clients, a few of
/// them for users that do not exist.
async fn drive(n: u32) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().expect("local address"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app())
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    // The client: reqwest as a tower service, with ipc.client.call for every request.
    let http = reqwest::Client::new();
    let client =
        IpcClientLayer::new().layer(tower::service_fn(move |req: http::Request<String>| {
            let http = http.clone();
            async move {
                let response = http.execute(reqwest::Request::try_from(req)?).await?;
                Ok::<_, reqwest::Error>(http::Response::from(response))
            }
        }));
    let mut clients = Vec::new();
    for c in 0..8u32 {
        let (mut client, base) = (client.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            for i in (c..n).step_by(8) {
                let (endpoint, path) = match i % 10 {
                    0 => ("health", "/health".to_string()),
                    9 => ("getUser", format!("/users/{}", 1000 + i)),
                    _ => ("getUser", format!("/users/{}", 1 + i % 100)),
                };
                let mut request = http::Request::get(format!("{base}{path}"))
                    .body(String::new())
                    .expect("a valid request");
                // The client side has no route template: name the remote operation.
                request.extensions_mut().insert(IpcEndpoint::new(endpoint));
                let sent = match client.ready().await {
                    Ok(ready) => ready.call(request).await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = sent {
                    eprintln!("request {path} failed: {e}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    for c in clients {
        let _ = c.await;
    }
    let _ = stop_tx.send(());
    let _ = server.await;
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        serve: false,
        port: 3000,
        requests: 1000,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--serve" => options.serve = true,
            "--port" => {
                options.port = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--port needs a port number")?
            }
            "--requests" => {
                options.requests = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--requests needs a number")?
            }
            "-h" | "--help" => return Err("An instrumented HTTP service.".into()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}
