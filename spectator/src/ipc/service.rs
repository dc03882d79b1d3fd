//! The services the layers wrap around, their futures and the response body wrapper.

use super::shared::{Pending, Shared, Side};
use super::status::{grpc_status, IpcStatus, PROTO_GRPC};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// The error type of client services: whatever the wrapped service failed with, boxed (as
/// tower's own middleware does). Downcast it to get the original error back.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service an [`IpcServerLayer`](super::IpcServerLayer) wraps around another: records
/// `ipc.server.call` and `ipc.server.inflight` for each request.
#[derive(Clone)]
pub struct IpcServerService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

/// The service an [`IpcClientLayer`](super::IpcClientLayer) wraps around another: records
/// `ipc.client.call` and `ipc.client.inflight` for each request.
#[derive(Clone)]
pub struct IpcClientService<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for IpcServerService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcServerService")
            .field("owner", &self.shared.config().owner)
            .finish_non_exhaustive()
    }
}

impl<S> std::fmt::Debug for IpcClientService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcClientService")
            .field("owner", &self.shared.config().owner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for IpcServerService<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
{
    type Response = http::Response<IpcBody<ResB>>;
    type Error = S::Error;
    type Future = IpcServerFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        // The request goes straight from the caller to the inner service (through no helper
        // taking it by value), which spares a copy of it on every call.
        let pending = match self.shared.endpoint_fn() {
            None => self.shared.begin(&req, None),
            Some(f) => {
                let (req, pending) = self.shared.start_with_fn(f, req);
                return IpcServerFuture {
                    inner: self.inner.call(req),
                    pending: Some(pending),
                };
            }
        };
        IpcServerFuture {
            inner: self.inner.call(req),
            pending: Some(pending),
        }
    }
}

impl<S, ReqB, ResB> tower::Service<http::Request<ReqB>> for IpcClientService<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<IpcBody<ResB>>;
    type Error = BoxError;
    type Future = IpcClientFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        // As the server's (see `IpcServerService::call`).
        let pending = match self.shared.endpoint_fn() {
            None => self.shared.begin(&req, None),
            Some(f) => {
                let (req, pending) = self.shared.start_with_fn(f, req);
                return IpcClientFuture {
                    inner: self.inner.call(req),
                    pending: Some(pending),
                };
            }
        };
        IpcClientFuture {
            inner: self.inner.call(req),
            pending: Some(pending),
        }
    }
}

pin_project! {
    /// The future of an [`IpcServerService`] call. Dropped before the response, it records
    /// the call as `cancelled`.
    pub struct IpcServerFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

pin_project! {
    /// The future of an [`IpcClientService`] call. Dropped before the response, it records
    /// the call as `cancelled`.
    pub struct IpcClientFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, B, E> Future for IpcServerFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<IpcBody<B>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let pending = this.pending.take();
        Poll::Ready(match result {
            Ok(response) => Ok(respond(pending, response)),
            Err(e) => {
                if let Some(p) = pending {
                    p.finish(IpcStatus::UnexpectedError, 0);
                }
                Err(e)
            }
        })
    }
}

impl<F, B, E> Future for IpcClientFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<IpcBody<B>>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let pending = this.pending.take();
        Poll::Ready(match result {
            Ok(response) => Ok(respond(pending, response)),
            Err(e) => {
                let e: BoxError = e.into();
                if let Some(p) = pending {
                    p.finish(IpcStatus::from_client_error(&*e), 0);
                }
                Err(e)
            }
        })
    }
}

/// Records the call for its response, or hands it to the body when the status comes in the
/// gRPC trailers.
#[inline]
fn respond<B>(pending: Option<Pending>, response: http::Response<B>) -> http::Response<IpcBody<B>> {
    let mut body_pending = None;
    let code = response.status().as_u16();
    if let Some(p) = pending {
        if p.proto() == PROTO_GRPC && response.status().is_success() {
            match grpc_status(response.headers()) {
                Some(grpc) => p.finish(IpcStatus::from_grpc_code(grpc), code),
                // The status comes in the trailers: the call ends with the body.
                None => {
                    body_pending = Some(BodyPending {
                        pending: Some(p),
                        http_status: code,
                    })
                }
            }
        } else {
            p.finish(IpcStatus::from_http_status(code), code);
        }
    }
    response.map(|inner| IpcBody {
        inner,
        pending: body_pending,
    })
}

pin_project! {
    /// A response body as the IPC layers return it: the wrapped body, unchanged. For a gRPC
    /// response whose `grpc-status` comes in the trailers, the call is recorded when the
    /// trailers arrive (or the body ends without them: `unexpected_error`; or fails: the
    /// server's `unexpected_error`, the client's `connection_error`; or is dropped first:
    /// `cancelled`).
    pub struct IpcBody<B> {
        #[pin]
        inner: B,
        pending: Option<BodyPending>,
    }
}

/// A call that ends with its response body, and the response's status code.
struct BodyPending {
    /// Always `Some` until finished.
    pending: Option<Pending>,
    http_status: u16,
}

impl BodyPending {
    fn finish(mut self, status: IpcStatus) {
        if let Some(p) = self.pending.take() {
            p.finish(status, self.http_status);
        }
    }
}

impl Drop for BodyPending {
    fn drop(&mut self) {
        // The body went away before its end: the client did.
        if let Some(p) = self.pending.take() {
            p.finish(IpcStatus::Cancelled, self.http_status);
        }
    }
}

impl<B> IpcBody<B> {
    /// The wrapped body.
    pub fn into_inner(self) -> B {
        self.inner
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for IpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcBody")
            .field("inner", &self.inner)
            .field("pending", &self.pending.is_some())
            .finish()
    }
}

impl<B: Body> Body for IpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if this.pending.is_some() {
            let status = match &frame {
                Some(Ok(f)) => f.trailers_ref().map(|t| match grpc_status(t) {
                    Some(code) => IpcStatus::from_grpc_code(code),
                    None => IpcStatus::UnexpectedError,
                }),
                Some(Err(_)) => Some(
                    match this
                        .pending
                        .as_ref()
                        .and_then(|p| p.pending.as_ref())
                        .map(Pending::side)
                    {
                        Some(Side::Client) => IpcStatus::ConnectionError,
                        _ => IpcStatus::UnexpectedError,
                    },
                ),
                None => Some(IpcStatus::UnexpectedError),
            };
            if let Some(status) = status {
                if let Some(p) = this.pending.take() {
                    p.finish(status);
                }
            }
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        // While the call waits for its trailers, have the reader poll to the end.
        self.pending.is_none() && self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
