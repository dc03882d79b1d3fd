//! The IPC server layer (`spectator::ipc`) around an axum app, through `oneshot` and over real
//! HTTP on 127.0.0.1, and around hand-built gRPC responses.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use bytes_body::Chunks;
use http_body_util::BodyExt;
use spectator::ipc::{IpcEndpoint, IpcServerLayer};
use spectator::{Op, Registry};
use tower::{Layer, ServiceExt};

/// The count of `ipc.server.call` with exactly these tags (owner `spectator-rs`, protocol
/// `http_1` unless given).
fn server_calls(registry: &Registry, tags: &[(&str, &str)]) -> u64 {
    let mut all: Vec<(&str, &str)> = vec![("owner", "spectator-rs"), ("ipc.protocol", "http_1")];
    for (k, v) in tags {
        all.retain(|(key, _)| key != k);
        all.push((k, v));
    }
    let result = match all.iter().find(|(k, _)| *k == "ipc.status") {
        Some((_, "success")) => "success",
        _ => "failure",
    };
    all.push(("ipc.result", result));
    registry.percentile_timer("ipc.server.call", &all).count()
}

fn app(registry: &Registry) -> Router {
    Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route(
            "/users/{id}",
            get(|| async { "alice" }).post(|| async { "made" }),
        )
        .route(
            "/throttled",
            get(|| async { StatusCode::TOO_MANY_REQUESTS }),
        )
        .route("/boom", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/forbidden", get(|| async { StatusCode::FORBIDDEN }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .layer(IpcServerLayer::with_registry(registry.clone()))
}

fn get_req(path: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap()
}

/// The statuses every check below expects, for the app's routes.
fn expect_routes(registry: &Registry, times: u64) {
    let cases = [
        ("/ok", "GET", "200", "success"),
        ("/users/{id}", "GET", "200", "success"),
        ("/users/{id}", "POST", "200", "success"),
        ("unknown", "GET", "404", "success"),
        ("/throttled", "GET", "429", "throttled"),
        ("/boom", "GET", "500", "unexpected_error"),
        ("/down", "GET", "503", "unavailable"),
        ("/forbidden", "GET", "403", "access_denied"),
    ];
    for (endpoint, method, code, status) in cases {
        let n = server_calls(
            registry,
            &[
                ("ipc.endpoint", endpoint),
                ("http.method", method),
                ("http.status", code),
                ("ipc.status", status),
            ],
        );
        assert_eq!(n, times, "{endpoint} {method} {code} {status}");
    }
}

async fn drive_oneshot(app: &Router) {
    for path in [
        "/ok",
        "/users/7",
        "/nowhere",
        "/throttled",
        "/boom",
        "/down",
        "/forbidden",
    ] {
        let r = app.clone().oneshot(get_req(path)).await.unwrap();
        // Read the body, as a server would.
        let _ = r.into_body().collect().await.unwrap();
    }
    let post = axum::http::Request::post("/users/8")
        .body(axum::body::Body::empty())
        .unwrap();
    app.clone().oneshot(post).await.unwrap();
}

#[tokio::test]
async fn axum_app_through_oneshot() {
    let registry = Registry::default();
    let app = app(&registry);
    drive_oneshot(&app).await;
    drive_oneshot(&app).await;
    expect_routes(&registry, 2);

    // A slow call dropped before its response is `cancelled`, without an http.status.
    let slow = tokio::time::timeout(
        Duration::from_millis(50),
        app.clone().oneshot(get_req("/slow")),
    );
    assert!(slow.await.is_err(), "the slow route answered");
    let cancelled = server_calls(
        &registry,
        &[
            ("ipc.endpoint", "/slow"),
            ("http.method", "GET"),
            ("ipc.status", "cancelled"),
        ],
    );
    assert_eq!(cancelled, 1);

    // What a publish would send: the route template (sanitised for Atlas on the wire); the
    // in-flight summaries, one record per call.
    let polled = registry.measurements();
    let endpoints: std::collections::BTreeSet<&str> = polled
        .iter()
        .filter(|m| m.id.name() == "ipc.server.call")
        .filter_map(|m| m.id.tag("ipc.endpoint"))
        .collect();
    assert!(endpoints.contains("/users/{id}"), "{endpoints:?}");
    assert!(endpoints.contains("unknown"), "{endpoints:?}");
    let inflight_count: f64 = polled
        .iter()
        .filter(|m| m.id.name() == "ipc.server.inflight" && m.id.tag("statistic") == Some("count"))
        .map(|m| m.value)
        .sum();
    assert_eq!(inflight_count, 17.0); // 2 x 8 calls + the cancelled one
    let inflight_max = polled
        .iter()
        .filter(|m| m.id.name() == "ipc.server.inflight" && m.id.tag("statistic") == Some("max"))
        .map(|m| (m.op, m.value))
        .collect::<Vec<_>>();
    assert!(
        inflight_max
            .iter()
            .all(|&(op, v)| op == Op::Max && v == 1.0),
        "{inflight_max:?}"
    );
    // Every call carries the required tags, consistent with each other.
    for m in polled.iter().filter(|m| m.id.name() == "ipc.server.call") {
        let status = m.id.tag("ipc.status").unwrap();
        let result = m.id.tag("ipc.result").unwrap();
        assert_eq!(result == "success", status == "success", "{}", m.id);
        assert_eq!(m.id.tag("owner"), Some("spectator-rs"));
        assert!(m.id.tag("ipc.attempt").is_none(), "{}", m.id);
    }
}

#[tokio::test]
async fn axum_app_over_http() {
    let registry = Registry::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app(&registry);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..3 {
        for path in [
            "/ok",
            "/users/7",
            "/nowhere",
            "/throttled",
            "/boom",
            "/down",
            "/forbidden",
        ] {
            client.get(format!("{base}{path}")).send().await.unwrap();
        }
        client.post(format!("{base}/users/9")).send().await.unwrap();
    }
    expect_routes(&registry, 3);

    // A client that gives up on the slow route: the server drops the call when the
    // connection closes.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(impatient.get(format!("{base}/slow")).send().await.is_err());
    let cancelled = || {
        server_calls(
            &registry,
            &[
                ("ipc.endpoint", "/slow"),
                ("http.method", "GET"),
                ("ipc.status", "cancelled"),
            ],
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cancelled() == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(cancelled(), 1);
    server.abort();
}

#[tokio::test]
async fn endpoints_are_bounded_per_layer() {
    let registry = Registry::default();
    let service = tower::service_fn(|_req: http::Request<String>| async {
        Ok::<_, Infallible>(http::Response::new(String::new()))
    });
    let layer = IpcServerLayer::with_registry(registry.clone()).owner("bounded");
    for _round in 0..2 {
        for i in 0..30 {
            let mut req = http::Request::new(String::new());
            req.extensions_mut()
                .insert(IpcEndpoint::new(format!("ep{i}")));
            layer.layer(service).oneshot(req).await.unwrap();
        }
    }
    let count = |endpoint: &str| {
        server_calls(
            &registry,
            &[
                ("owner", "bounded"),
                ("ipc.endpoint", endpoint),
                ("http.method", "GET"),
                ("http.status", "200"),
                ("ipc.status", "success"),
            ],
        )
    };
    for i in 0..25 {
        assert_eq!(count(&format!("ep{i}")), 2, "ep{i}");
    }
    for i in 25..30 {
        assert_eq!(count(&format!("ep{i}")), 0, "ep{i}");
    }
    assert_eq!(count("--others--"), 10);
    let series = registry
        .measurements()
        .iter()
        .filter(|m| m.id.name() == "ipc.server.call" && m.id.tag("statistic") == Some("count"))
        .count();
    assert_eq!(series, 26);
}

#[tokio::test]
async fn options_owner_tags_and_endpoint_fn() {
    let registry = Registry::default();
    let service = tower::service_fn(|_req: http::Request<String>| async {
        Ok::<_, Infallible>(
            http::Response::builder()
                .status(201)
                .body(String::new())
                .unwrap(),
        )
    });
    let layer = IpcServerLayer::with_registry(registry.clone())
        .owner("shop")
        .tag("id", "checkout")
        .tag("ipc.status", "ignored")
        .endpoint_fn(|parts| parts.headers.get("x-op")?.to_str().ok());
    let req = http::Request::put("/carts/1")
        .header("x-op", "addItem")
        .body(String::new())
        .unwrap();
    layer.layer(service).oneshot(req).await.unwrap();
    // Without the header the defaults apply: `unknown`.
    let req = http::Request::put("/carts/1").body(String::new()).unwrap();
    layer.layer(service).oneshot(req).await.unwrap();
    for endpoint in ["addItem", "unknown"] {
        let n = registry
            .percentile_timer(
                "ipc.server.call",
                &[
                    ("owner", "shop"),
                    ("id", "checkout"),
                    ("ipc.result", "success"),
                    ("ipc.status", "success"),
                    ("ipc.endpoint", endpoint),
                    ("http.method", "PUT"),
                    ("http.status", "201"),
                    ("ipc.protocol", "http_1"),
                ],
            )
            .count();
        assert_eq!(n, 1, "{endpoint}");
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC: responses built by hand, as tonic sends them.

mod bytes_body {
    use super::*;

    /// A body of data frames followed by optional trailers.
    pub struct Chunks {
        pub frames: std::collections::VecDeque<http_body::Frame<axum::body::Bytes>>,
    }

    impl Chunks {
        pub fn new(data: &'static [u8], trailers: Option<http::HeaderMap>) -> Chunks {
            let mut frames = std::collections::VecDeque::new();
            frames.push_back(http_body::Frame::data(axum::body::Bytes::from_static(data)));
            if let Some(t) = trailers {
                frames.push_back(http_body::Frame::trailers(t));
            }
            Chunks { frames }
        }
    }

    impl http_body::Body for Chunks {
        type Data = axum::body::Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            Poll::Ready(self.frames.pop_front().map(Ok))
        }
    }
}

fn grpc_request(method: &str) -> http::Request<String> {
    http::Request::post(format!("/shop.Cart/{method}"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(String::new())
        .unwrap()
}

fn grpc_calls(registry: &Registry, method: &str, code: Option<&str>, status: &str) -> u64 {
    let endpoint = format!("/shop.Cart/{method}");
    let mut tags = vec![
        ("ipc.endpoint", endpoint.as_str()),
        ("ipc.protocol", "grpc"),
        ("http.method", "POST"),
        ("ipc.status", status),
    ];
    if let Some(code) = code {
        tags.push(("http.status", code));
    }
    server_calls(registry, &tags)
}

fn trailers(code: &'static str) -> http::HeaderMap {
    let mut t = http::HeaderMap::new();
    t.insert("grpc-status", http::HeaderValue::from_static(code));
    t
}

#[tokio::test]
async fn grpc_status_in_headers_and_trailers() {
    let registry = Registry::default();
    // The service answers by method: a trailers-only response (grpc-status in the headers),
    // or data then trailers.
    let service = tower::service_fn(|req: http::Request<String>| async move {
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_string();
        let response = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc");
        let response = match method.as_str() {
            "Unavailable" => response
                .header("grpc-status", "14")
                .body(Chunks::new(b"", None)),
            "Ok" => response.body(Chunks::new(b"\0\0\0\0\0", Some(trailers("0")))),
            "Busy" => response.body(Chunks::new(b"\0\0\0\0\0", Some(trailers("8")))),
            "Denied" => response.body(Chunks::new(b"", Some(trailers("16")))),
            "NoTrailers" => response.body(Chunks::new(b"\0\0\0\0\0", None)),
            _ => response.body(Chunks::new(b"", Some(trailers("12")))),
        };
        Ok::<_, Infallible>(response.unwrap())
    });
    let layer = IpcServerLayer::with_registry(registry.clone());

    // Trailers-only: recorded with the response.
    let r = layer
        .layer(service)
        .oneshot(grpc_request("Unavailable"))
        .await
        .unwrap();
    assert_eq!(
        grpc_calls(&registry, "Unavailable", Some("200"), "unavailable"),
        1
    );
    drop(r);

    // Status in the trailers: recorded when the body ends, not before.
    for (method, status) in [
        ("Ok", "success"),
        ("Busy", "throttled"),
        ("Denied", "access_denied"),
        ("NoTrailers", "unexpected_error"),
        ("Other", "unexpected_error"),
    ] {
        let r = layer
            .layer(service)
            .oneshot(grpc_request(method))
            .await
            .unwrap();
        assert_eq!(
            grpc_calls(&registry, method, Some("200"), status),
            0,
            "{method}"
        );
        let body = r.into_body().collect().await.unwrap();
        let expect_trailers = method != "NoTrailers";
        assert_eq!(body.trailers().is_some(), expect_trailers, "{method}");
        assert_eq!(
            grpc_calls(&registry, method, Some("200"), status),
            1,
            "{method}"
        );
    }

    // A body dropped before its trailers: the client went away.
    let r = layer
        .layer(service)
        .oneshot(grpc_request("Busy"))
        .await
        .unwrap();
    let mut body = r.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    assert_eq!(grpc_calls(&registry, "Busy", Some("200"), "cancelled"), 1);
    assert_eq!(grpc_calls(&registry, "Busy", Some("200"), "throttled"), 1);
}

#[tokio::test]
async fn many_tag_combinations_all_counted() {
    // More status x method combinations than the layer's lock-free table holds: the rest go
    // to its overflow map, and every call is still counted under its own tags.
    let registry = Registry::default();
    let service = tower::service_fn(|req: http::Request<String>| async move {
        let code: u16 = req.uri().path()[1..].parse().unwrap();
        Ok::<_, Infallible>(
            http::Response::builder()
                .status(code)
                .body(String::new())
                .unwrap(),
        )
    });
    let layer = IpcServerLayer::with_registry(registry.clone());
    let methods = [http::Method::GET, http::Method::POST, http::Method::PUT];
    for round in 0..2 {
        for code in 100..1000u16 {
            for m in &methods {
                let req = http::Request::builder()
                    .method(m.clone())
                    .uri(format!("/{code}"))
                    .body(String::new())
                    .unwrap();
                layer.layer(service).oneshot(req).await.unwrap();
            }
        }
        let calls = registry
            .measurements()
            .iter()
            .filter(|m| m.id.name() == "ipc.server.call" && m.id.tag("statistic") == Some("count"))
            .map(|m| m.value)
            .collect::<Vec<_>>();
        assert_eq!(calls.len(), 900 * 3, "round {round}");
        assert!(calls.iter().all(|&v| v == 1.0), "round {round}");
    }
}
