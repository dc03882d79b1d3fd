//! Netflix's common IPC metrics for tower HTTP services: axum, tonic and hyper servers, hyper
//! and reqwest clients (feature `tower`).
//!
//! Every Netflix service reports its inbound and outbound calls in one shape, so that shared
//! dashboards and alerts work for all of them: the [IPC metrics
//! spec](https://netflix.github.io/atlas-docs/spectator/specs/ipc/) (Spectator's
//! `spectator-ext-ipc`). [`IpcServerLayer`] and [`IpcClientLayer`] are `tower::Layer`s
//! that report them for any `tower::Service<http::Request<B>, Response = http::Response<B2>>`:
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{routing::get, Router};
//! use spectator::ipc::IpcServerLayer;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "alice" }))
//!     .layer(IpcServerLayer::new()); // records into spectator::global()
//! # }
//! ```
//!
//! # What is recorded
//!
//! | meter | type | tags |
//! |---|---|---|
//! | `ipc.server.call`, `ipc.client.call` | [`PercentileTimer`](crate::PercentileTimer), one record per call | `owner`, `ipc.result`, `ipc.status`, `ipc.endpoint`, `http.method`, `http.status`, `ipc.protocol`; client calls also `ipc.attempt`, `ipc.attempt.final` |
//! | `ipc.server.inflight`, `ipc.client.inflight` | [`DistributionSummary`](crate::DistributionSummary): the number of calls of the endpoint in flight, recorded as each one starts | `owner`, `ipc.endpoint` |
//!
//! * `owner`: `spectator-rs`, or what [`IpcServerLayer::owner`] sets.
//! * `ipc.status`: see [`IpcStatus`]; `ipc.result` is `success` for `success`, else
//!   `failure`. For HTTP, from the response's status code
//!   ([`IpcStatus::from_http_status`]). For gRPC (a request whose `content-type` is
//!   `application/grpc*`), from the `grpc-status` header of a trailers-only response, else
//!   from the `grpc-status` trailer ([`IpcStatus::from_grpc_code`]): then the call ends
//!   when the response body ends, and its time includes the streaming of the body. A gRPC
//!   response with a non-2xx HTTP status is mapped as HTTP. A call whose future (or gRPC
//!   body) is dropped first is `cancelled`. A server whose service fails reports
//!   `unexpected_error`; a client whose service fails reports `timeout` or
//!   `connection_error` by the error's kind ([`IpcStatus::from_client_error`]).
//! * `ipc.endpoint`: the first of: the custom extractor's value
//!   ([`IpcServerLayer::endpoint_fn`]); an [`IpcEndpoint`] in the request's extensions; with
//!   feature `axum`, the route template from axum's `MatchedPath` (e.g. `/users/{id}`,
//!   reported as `_users__id_` since Atlas allows only `-._A-Za-z0-9~^` in values); for
//!   gRPC, the `/package.Service/Method` path; else `unknown` (e.g. axum's 404 fallback).
//!   Each layer reports at most 25 distinct endpoints (besides `unknown`): later ones are
//!   `--others--`, so that a raw path can never explode the number of time series.
//! * `http.method`: the standard methods by name, any other as `other`. `http.status`: the
//!   response's status code; absent when there was no response (an error, `cancelled`).
//! * `ipc.protocol`: `grpc`, else `http_1` or `http_2` from the request's version.
//! * `ipc.attempt` (`initial`, `second`, `third_up`) and `ipc.attempt.final` (`true`,
//!   `false`): from an [`IpcAttempt`] in the request's extensions; `initial` and `true`
//!   without one.
//! * Extra static tags: [`IpcServerLayer::tag`]. Keep them few and low in cardinality.
//!
//! Differences from Java's `IpcLogEntry`: 503 maps to `unavailable` (Java's default maps it
//! to `throttled`, its `forHttpStatusStandard` to `unavailable`); the in-flight summaries
//! count per endpoint and carry `ipc.endpoint` (an optional dimension of the spec); the
//! optional dimensions that need Netflix's infrastructure (`ipc.vip`, `ipc.server.app`,
//! `ipc.client.app`, ...) and the size summaries are not reported.
//!
//! # Cost
//!
//! A call on an endpoint seen before reads the registry's clock twice, finds its endpoint
//! among at most 25 short strings and its timer in a fixed per-layer table keyed by a packed
//! integer (one multiply, one atomic load), and updates the two meters: four atomic
//! read-modify-writes in all (entering and leaving the in-flight count, one per meter record),
//! no allocation, no lock, no registry lookup. A new endpoint or tag combination takes the layer's mutex once
//! (a combination that finds no free slot near its place in the 512-slot table is kept in a
//! map behind a mutex instead: rare, and slower). `BENCHMARKS.md`
//! in the repository has the numbers.
//!
//! # Clients
//!
//! ```
//! use spectator::ipc::{IpcAttempt, IpcClientLayer, IpcEndpoint};
//! use spectator::Registry;
//! use tower::{Layer, Service, ServiceExt};
//!
//! let registry = Registry::default();
//! // Any tower client: hyper-util's `Client`, reqwest behind `tower::service_fn`, ...
//! let client = tower::service_fn(|_req: http::Request<String>| async {
//!     Ok::<_, std::io::Error>(http::Response::builder().status(503).body(String::new()).unwrap())
//! });
//! let mut client = IpcClientLayer::with_registry(registry.clone()).layer(client);
//!
//! let mut request = http::Request::new(String::new());
//! request.extensions_mut().insert(IpcEndpoint::new("getUser"));
//! request.extensions_mut().insert(IpcAttempt::new(2, true)); // the first retry, the last one
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let response = client.ready().await.unwrap().call(request).await.unwrap();
//! assert_eq!(response.status(), 503);
//! # });
//! let calls = registry.percentile_timer(
//!     "ipc.client.call",
//!     &[
//!         ("owner", "spectator-rs"),
//!         ("ipc.result", "failure"),
//!         ("ipc.status", "unavailable"),
//!         ("ipc.endpoint", "getUser"),
//!         ("http.method", "GET"),
//!         ("http.status", "503"),
//!         ("ipc.protocol", "http_1"),
//!         ("ipc.attempt", "second"),
//!         ("ipc.attempt.final", "true"),
//!     ],
//! );
//! assert_eq!(calls.count(), 1);
//! ```
//!
//! The client service's error type is [`BoxError`], as with tower's own middleware.

mod service;
mod shared;
mod status;

pub use service::{
    BoxError, IpcBody, IpcClientFuture, IpcClientService, IpcServerFuture, IpcServerService,
};
pub use shared::{MAX_ENDPOINTS, OTHERS, UNKNOWN};
pub use status::{IpcAttempt, IpcStatus};

use crate::registry::Registry;
use shared::{Config, Shared, Side, OWN_KEYS};
use std::borrow::Cow;
use std::sync::Arc;

/// The `ipc.endpoint` of a request, put in its extensions by the caller (a client naming the
/// remote operation, a server's own routing middleware). It takes precedence over the route
/// template and the gRPC path.
///
/// ```
/// use spectator::ipc::IpcEndpoint;
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(IpcEndpoint::new("getUser"));
/// assert_eq!(request.extensions().get::<IpcEndpoint>().unwrap().as_str(), "getUser");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IpcEndpoint(Cow<'static, str>);

impl IpcEndpoint {
    /// An endpoint name: a `&'static str` or a `String`.
    pub fn new(name: impl Into<Cow<'static, str>>) -> IpcEndpoint {
        IpcEndpoint(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! layer {
    ($(#[$doc:meta])* $layer:ident, $service:ident, $side:expr, $call:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $layer {
            shared: Arc<Shared>,
        }

        impl Default for $layer {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Debug for $layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($layer))
                    .field("owner", &self.shared.config().owner)
                    .field("tags", &self.shared.config().tags)
                    .field("endpoint_fn", &self.shared.config().endpoint_fn.is_some())
                    .finish()
            }
        }

        impl $layer {
            /// A layer recording into [`global()`](crate::global()).
            pub fn new() -> Self {
                Self::with_registry(crate::global().clone())
            }

            /// A layer recording into `registry`.
            pub fn with_registry(registry: Registry) -> Self {
                Self {
                    shared: Arc::new(Shared::new(registry, $side, Config::default())),
                }
            }

            fn reconfigure(self, f: impl FnOnce(&mut Config)) -> Self {
                let mut config = self.shared.config().clone();
                f(&mut config);
                Self {
                    shared: Arc::new(Shared::new(self.shared.registry().clone(), $side, config)),
                }
            }

            /// The `owner` tag: the library or framework reporting the calls (default
            #[doc = concat!("`spectator-rs`). Set options before using the layer: each one starts")]
            /// afresh (no endpoints seen yet).
            pub fn owner(self, owner: &str) -> Self {
                let owner = owner.to_string();
                self.reconfigure(|c| c.owner = owner)
            }

            #[doc = concat!("Adds a static tag to every `", $call, "`, e.g. the spec's `id` (the")]
            /// client's name) or `ipc.vip`. Keys the layer sets itself (`owner`, `ipc.status`,
            /// ...) are ignored. A tag with the key of an earlier one replaces it.
            pub fn tag(self, key: &str, value: &str) -> Self {
                if OWN_KEYS.contains(&key) {
                    tracing::warn!(
                        target: "spectator::ipc",
                        key,
                        "the IPC layers set this tag themselves; ignoring the extra tag"
                    );
                    return self;
                }
                let (key, value) = (key.to_string(), value.to_string());
                self.reconfigure(|c| {
                    c.tags.retain(|(k, _)| *k != key);
                    c.tags.push((key, value));
                })
            }

            /// Names each request's `ipc.endpoint` with `f`, e.g. from a header or an
            /// extension of the application's own. When `f` returns `None`, the defaults apply
            /// ([`IpcEndpoint`], the route template, the gRPC path, `unknown`). The value is
            /// still bounded to 25 distinct ones per layer.
            ///
            /// ```
            #[doc = concat!("use spectator::ipc::", stringify!($layer), ";")]
            #[doc = concat!("let layer = ", stringify!($layer), "::with_registry(spectator::Registry::default())")]
            ///     .endpoint_fn(|parts| parts.headers.get("x-operation")?.to_str().ok());
            /// ```
            pub fn endpoint_fn<F>(self, f: F) -> Self
            where
                F: Fn(&http::request::Parts) -> Option<&str> + Send + Sync + 'static,
            {
                self.reconfigure(|c| c.endpoint_fn = Some(Arc::new(f)))
            }
        }

        impl<S> tower::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> Self::Service {
                $service {
                    inner,
                    shared: Arc::clone(&self.shared),
                }
            }
        }
    };
}

layer!(
    /// A `tower::Layer` that records `ipc.server.call` and `ipc.server.inflight` for every
    /// request a service handles (see the [module docs](self) for the tags).
    ///
    /// Apply it with axum's `Router::layer` (after the routes, so that the route template is
    /// known), tonic's `Server::builder().layer(..)`, or `tower::ServiceBuilder` in front of
    /// any hyper service. One layer shares its endpoint table and meters among every service it
    /// wraps (with axum: every route).
    ///
    /// ```
    /// use spectator::ipc::IpcServerLayer;
    /// use spectator::Registry;
    /// use tower::{Layer, ServiceExt};
    ///
    /// let registry = Registry::default();
    /// let service = tower::service_fn(|_req: http::Request<String>| async {
    ///     Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hi")))
    /// });
    /// let service = IpcServerLayer::with_registry(registry.clone()).owner("my-server").layer(service);
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// service.oneshot(http::Request::new(String::new())).await.unwrap();
    /// # });
    /// let ok = registry.percentile_timer(
    ///     "ipc.server.call",
    ///     &[
    ///         ("owner", "my-server"),
    ///         ("ipc.result", "success"),
    ///         ("ipc.status", "success"),
    ///         ("ipc.endpoint", "unknown"),
    ///         ("http.method", "GET"),
    ///         ("http.status", "200"),
    ///         ("ipc.protocol", "http_1"),
    ///     ],
    /// );
    /// assert_eq!(ok.count(), 1);
    /// ```
    IpcServerLayer,
    IpcServerService,
    Side::Server,
    "ipc.server.call"
);

layer!(
    /// A `tower::Layer` that records `ipc.client.call` and `ipc.client.inflight` for every
    /// request a client service sends (see the [module docs](self) for the tags and an
    /// example). Put it inside a retry layer (between the retries and the transport) so that
    /// each attempt is one call, with the retry policy setting [`IpcAttempt`] on each
    /// attempt's request; put a `tower::timeout` layer inside it so that its timeouts are
    /// reported as `timeout`.
    IpcClientLayer,
    IpcClientService,
    Side::Client,
    "ipc.client.call"
);
