//! The IPC client layer (`spectator::ipc::IpcClientLayer`) around a reqwest-backed tower
//! service, against local servers on 127.0.0.1 that refuse connections, never answer, and
//! answer 503.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use spectator::ipc::{BoxError, IpcAttempt, IpcClientLayer, IpcEndpoint};
use spectator::Registry;
use tower::{Layer, Service, ServiceExt};

/// A tower client over reqwest: `http::Request` in, `http::Response<reqwest::Body>` out.
fn reqwest_service(
    timeout: Duration,
) -> impl Service<
    http::Request<String>,
    Response = http::Response<reqwest::Body>,
    Error = reqwest::Error,
    Future = impl std::future::Future<Output = Result<http::Response<reqwest::Body>, reqwest::Error>>
                 + Send,
> + Clone {
    let client = reqwest::Client::builder().timeout(timeout).build().unwrap();
    tower::service_fn(move |req: http::Request<String>| {
        let client = client.clone();
        async move {
            let req = reqwest::Request::try_from(req)?;
            let response = client.execute(req).await?;
            Ok(http::Response::from(response))
        }
    })
}

fn get_req(url: &str, endpoint: &'static str) -> http::Request<String> {
    let mut req = http::Request::get(url).body(String::new()).unwrap();
    req.extensions_mut().insert(IpcEndpoint::new(endpoint));
    req
}

/// The count of `ipc.client.call` for `endpoint` with `status`, `http.status` = `code`
/// (none: no tag), and the given attempt.
fn client_calls(
    registry: &Registry,
    endpoint: &str,
    code: Option<&str>,
    status: &str,
    attempt: (&str, &str),
) -> u64 {
    let mut tags = vec![
        ("owner", "spectator-rs"),
        (
            "ipc.result",
            if status == "success" {
                "success"
            } else {
                "failure"
            },
        ),
        ("ipc.status", status),
        ("ipc.endpoint", endpoint),
        ("http.method", "GET"),
        ("ipc.protocol", "http_1"),
        ("ipc.attempt", attempt.0),
        ("ipc.attempt.final", attempt.1),
    ];
    if let Some(code) = code {
        tags.push(("http.status", code));
    }
    registry.percentile_timer("ipc.client.call", &tags).count()
}

const FIRST: (&str, &str) = ("initial", "true");

#[tokio::test]
async fn refused_connection_is_a_connection_error() {
    let registry = Registry::default();
    // A port that was just free: bound, then closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = IpcClientLayer::with_registry(registry.clone())
        .layer(reqwest_service(Duration::from_secs(5)));
    let url = format!("http://127.0.0.1:{port}/users/1");
    let err: BoxError = client.oneshot(get_req(&url, "getUser")).await.unwrap_err();
    // The original error is still there, boxed.
    let e = err
        .downcast_ref::<reqwest::Error>()
        .expect("a reqwest error");
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(
        client_calls(&registry, "getUser", None, "connection_error", FIRST),
        1
    );
}

#[tokio::test]
async fn silent_server_is_a_timeout() {
    let registry = Registry::default();
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("http://{addr}/users/1");

    // reqwest's own timeout.
    let client = IpcClientLayer::with_registry(registry.clone())
        .layer(reqwest_service(Duration::from_millis(200)));
    let started = std::time::Instant::now();
    client.oneshot(get_req(&url, "getUser")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        client_calls(&registry, "getUser", None, "timeout", FIRST),
        1
    );

    // A tower timeout inside the IPC layer.
    let client = IpcClientLayer::with_registry(registry.clone()).layer(
        tower::ServiceBuilder::new()
            .timeout(Duration::from_millis(200))
            .service(reqwest_service(Duration::from_secs(30))),
    );
    let err = client
        .oneshot(get_req(&url, "listUsers"))
        .await
        .unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err:?}");
    assert_eq!(
        client_calls(&registry, "listUsers", None, "timeout", FIRST),
        1
    );

    // A caller that gives up first (its own timeout around the call): `cancelled`.
    let client = IpcClientLayer::with_registry(registry.clone())
        .layer(reqwest_service(Duration::from_secs(30)));
    let call = client.oneshot(get_req(&url, "search"));
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    assert_eq!(
        client_calls(&registry, "search", None, "cancelled", FIRST),
        1
    );
    silent.abort();
}

#[tokio::test]
async fn answers_are_mapped_by_status_with_attempts() {
    let registry = Registry::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route("/ok", get(|| async { "fine" }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut client = IpcClientLayer::with_registry(registry.clone())
        .owner("my-client")
        .tag("id", "users-client")
        .layer(reqwest_service(Duration::from_secs(5)));

    // Three attempts of one request, the way a retry policy would mark them.
    for (number, is_final) in [(1, false), (2, false), (3, true)] {
        let mut req = get_req(&format!("{base}/down"), "getUser");
        req.extensions_mut()
            .insert(IpcAttempt::new(number, is_final));
        let r = client.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(r.status(), 503);
        let _ = r.into_body().collect().await.unwrap();
    }
    let r = client
        .ready()
        .await
        .unwrap()
        .call(get_req(&format!("{base}/ok"), "health"))
        .await
        .unwrap();
    assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "fine");

    let calls = |endpoint: &str, code: &str, status: &str, attempt: (&str, &str)| {
        let result = if status == "success" {
            "success"
        } else {
            "failure"
        };
        registry
            .percentile_timer(
                "ipc.client.call",
                &[
                    ("owner", "my-client"),
                    ("id", "users-client"),
                    ("ipc.result", result),
                    ("ipc.status", status),
                    ("ipc.endpoint", endpoint),
                    ("http.method", "GET"),
                    ("http.status", code),
                    ("ipc.protocol", "http_1"),
                    ("ipc.attempt", attempt.0),
                    ("ipc.attempt.final", attempt.1),
                ],
            )
            .count()
    };
    assert_eq!(
        calls("getUser", "503", "unavailable", ("initial", "false")),
        1
    );
    assert_eq!(
        calls("getUser", "503", "unavailable", ("second", "false")),
        1
    );
    assert_eq!(
        calls("getUser", "503", "unavailable", ("third_up", "true")),
        1
    );
    assert_eq!(calls("health", "200", "success", ("initial", "true")), 1);

    let inflight = registry.distribution_summary(
        "ipc.client.inflight",
        &[("owner", "my-client"), ("ipc.endpoint", "getUser")],
    );
    assert_eq!(inflight.count(), 3);
    assert_eq!(inflight.total_amount(), 3.0); // one at a time
    server.abort();
}
