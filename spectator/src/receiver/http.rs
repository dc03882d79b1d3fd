//! The receiver's HTTP/1.1 server: hyper on a current-thread tokio runtime, with the
//! receiver's limits (request timeout, connection cap, body cap) and the scripted faults.
//!
//! Why hyper and not a parser of our own is said in the module docs of [`super`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use super::decode::{decode_payload, gunzip};
use super::validate::validate;
use super::{Command, ReceivedRequest, Reply, Shared, PUBLISH_PATH, TARGET};
use crate::log::warn_limited;

/// Largest request head (request line and headers) accepted; a larger one closes the connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in one request; more close the connection.
const MAX_HEADERS: usize = 100;
/// Pause between the chunks of a [`Reply::Endless`] body.
const ENDLESS_TICK: Duration = Duration::from_millis(20);

/// A status and a JSON body: every answer the receiver gives is built here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: String,
}

impl Answer {
    /// 200 `{}`: everything accepted.
    pub(super) fn ok() -> Answer {
        Answer {
            status: 200,
            body: "{}".to_string(),
        }
    }

    /// An error answer accepting nothing and counting no measurement, e.g. 404 or 413.
    pub(super) fn error(status: u16, messages: &[String]) -> Answer {
        Answer::rejected(status, 0, messages)
    }

    /// The body Atlas answers with when it turns measurements away:
    /// `{"type":"partial"|"error","errorCount":n,"message":[..]}` (partial for a 202).
    pub(super) fn rejected(status: u16, count: usize, messages: &[String]) -> Answer {
        let kind = if status == 202 { "partial" } else { "error" };
        Answer {
            status,
            body: serde_json::json!({"type": kind, "errorCount": count, "message": messages})
                .to_string(),
        }
    }
}

/// Why a connection is closed without an answer (a hang, a reset, a client too slow).
#[derive(Debug)]
struct Closed(&'static str);

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Closed {}

/// Marks a connection busy (being answered: not to be shed) while alive.
struct BusyGuard(Arc<AtomicBool>);

impl BusyGuard {
    fn new(flag: &Arc<AtomicBool>) -> BusyGuard {
        flag.store(true, Ordering::Relaxed);
        BusyGuard(Arc::clone(flag))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// A response body: a whole JSON document, or a [`Reply::Endless`] trickle.
enum ReplyBody {
    Full(Option<Bytes>),
    Endless {
        tick: Pin<Box<tokio::time::Sleep>>,
        _busy: BusyGuard,
    },
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ReplyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ReplyBody::Endless { tick, .. } => {
                ready!(tick.as_mut().poll(cx));
                tick.as_mut()
                    .reset(tokio::time::Instant::now() + ENDLESS_TICK);
                // One space of a JSON document that is never closed.
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b" ")))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReplyBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReplyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ReplyBody::Endless { .. } => SizeHint::default(),
        }
    }
}

fn respond(answer: Answer) -> Response<ReplyBody> {
    let mut res = Response::new(ReplyBody::Full(Some(Bytes::from(answer.body))));
    *res.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// The TCP stream under hyper, which a [`Reply::Reset`] can abort: once `reset` is set, it
/// writes nothing more and is closed with a zero linger, so the peer gets a RST.
struct ResettableStream {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl ResettableStream {
    fn aborted(&self) -> bool {
        self.reset.load(Ordering::Relaxed)
    }
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.aborted() {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.aborted() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.aborted() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// One open connection, as the accept loop tracks it for the connection cap.
struct Tracked {
    busy: Arc<AtomicBool>,
    close: Option<oneshot::Sender<()>>,
}

/// Open connections by id; ids grow, so the first entries are the oldest.
type Connections = Arc<Mutex<BTreeMap<u64, Tracked>>>;

fn lock(conns: &Connections) -> std::sync::MutexGuard<'_, BTreeMap<u64, Tracked>> {
    conns.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Makes room for one more connection under the cap: closes the oldest connection that is not
/// being answered. Says whether there is room.
fn make_room(conns: &Connections, shared: &Shared) -> bool {
    let mut open = lock(conns);
    if open.len() < shared.limits.max_connections {
        return true;
    }
    let oldest_idle = open
        .iter()
        .find(|(_, c)| !c.busy.load(Ordering::Relaxed))
        .map(|(id, _)| *id);
    let Some(id) = oldest_idle else {
        return false;
    };
    if let Some(mut c) = open.remove(&id) {
        if let Some(close) = c.close.take() {
            let _ = close.send(());
        }
    }
    true
}

pub(super) async fn serve(
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
) {
    let mut listener: Option<TcpListener> = None;
    // Bumped by `down`: every connection task watches it and closes its socket.
    let (epoch, _) = watch::channel(0u64);
    let conns: Connections = Arc::default();
    let mut next_id = 0u64;
    loop {
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            command = commands.recv() => match command {
                None => return,
                Some(Command::Listen(l)) => match TcpListener::from_std(l) {
                    Ok(l) => listener = Some(l),
                    Err(e) => tracing::error!(target: TARGET, "cannot listen: {e}"),
                },
                Some(Command::Down(ack)) => {
                    listener = None;
                    epoch.send_modify(|e| *e += 1);
                    let _ = ack.send(());
                }
            },
            accepted = accept => match accepted {
                Ok((stream, peer)) => {
                    if !make_room(&conns, &shared) {
                        // Every connection is being answered: turn this one away.
                        shared.counters.shed.fetch_add(1, Ordering::Relaxed);
                        warn_limited!(
                            target: "spectator::receiver",
                            %peer,
                            "connection cap reached and every connection busy: closing a new one"
                        );
                        continue;
                    }
                    next_id += 1;
                    spawn_connection(next_id, stream, &shared, &conns, epoch.subscribe());
                }
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    warn_limited!(target: "spectator::receiver", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

fn spawn_connection(
    id: u64,
    stream: TcpStream,
    shared: &Arc<Shared>,
    conns: &Connections,
    mut closed: watch::Receiver<u64>,
) {
    let busy = Arc::new(AtomicBool::new(false));
    let (close, mut evicted) = oneshot::channel();
    lock(conns).insert(
        id,
        Tracked {
            busy: Arc::clone(&busy),
            close: Some(close),
        },
    );
    let _ = stream.set_nodelay(true);
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResettableStream {
        stream,
        reset: Arc::clone(&reset),
    });
    let shared = Arc::clone(shared);
    let conns = Arc::clone(conns);
    tokio::spawn(async move {
        let limits = shared.limits;
        let service = {
            let shared = Arc::clone(&shared);
            hyper::service::service_fn(move |req| {
                handle(
                    req,
                    Arc::clone(&shared),
                    Arc::clone(&busy),
                    Arc::clone(&reset),
                )
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.request_timeout)
            .max_header_size(MAX_HEAD_BYTES)
            .max_headers(MAX_HEADERS)
            .pipeline_flush(true)
            // A client may shut its side down once its request is sent, and still read.
            .half_close(true);
        let connection = builder.serve_connection(io, service);
        // `down` and shedding win over anything the connection could still do.
        tokio::select! {
            biased;
            _ = closed.changed() => {}
            _ = &mut evicted => {
                shared.counters.shed.fetch_add(1, Ordering::Relaxed);
                warn_limited!(
                    target: "spectator::receiver",
                    "connection cap reached: closed the oldest connection not being answered"
                );
            }
            result = connection => if let Err(e) = result {
                if e.is_timeout() {
                    shared.counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(target: TARGET, "closed a connection: no request head within the timeout");
                } else {
                    tracing::debug!(target: TARGET, "connection ended: {e}");
                }
            }
        }
        lock(&conns).remove(&id);
    });
}

/// The request as recorded, before its payload is known.
fn record_of(req: &Request<Incoming>) -> ReceivedRequest {
    ReceivedRequest {
        method: req.method().as_str().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map_or_else(|| req.uri().to_string(), |p| p.as_str().to_string()),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_len: 0,
        payload: Err(String::new()),
        violations: Vec::new(),
        status: None,
        accepted: Vec::new(),
    }
}

/// Answers `status` with `message` without taking the request as a publish (404, 405, 413),
/// and records it so.
fn refuse(
    shared: &Shared,
    mut record: ReceivedRequest,
    status: u16,
    message: String,
) -> Response<ReplyBody> {
    tracing::debug!(
        target: TARGET,
        method = %record.method,
        path = %record.path,
        status,
        "refused: {message}"
    );
    let answer = Answer::error(status, std::slice::from_ref(&message));
    record.status = Some(status);
    record.payload = Err(message);
    shared.record(record);
    respond(answer)
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    busy: Arc<AtomicBool>,
    reset: Arc<AtomicBool>,
) -> Result<Response<ReplyBody>, Closed> {
    let limits = shared.limits;
    let mut record = record_of(&req);
    if req.method() != Method::POST {
        let msg = format!(
            "method {} is not allowed: publish with POST {PUBLISH_PATH}",
            req.method()
        );
        let mut res = refuse(&shared, record, 405, msg);
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(res);
    }
    if req.uri().path() != PUBLISH_PATH {
        let msg = format!(
            "no such path {}: publish to {PUBLISH_PATH}",
            req.uri().path()
        );
        return Ok(refuse(&shared, record, 404, msg));
    }
    let too_large = || format!("request body larger than {} bytes", limits.max_body_bytes);
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_body_bytes as u64) {
        // Answered before reading: with `Expect: 100-continue` the body is never sent.
        return Ok(refuse(&shared, record, 413, too_large()));
    }
    let gzipped = req
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let body = Limited::new(req.into_body(), limits.max_body_bytes);
    let body = match tokio::time::timeout(limits.request_timeout, body.collect()).await {
        Err(_) => {
            shared.counters.timed_out.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: TARGET, "closed a connection: no request body within the timeout");
            return Err(Closed("request body timed out"));
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(refuse(&shared, record, 413, too_large()));
        }
        Ok(Err(e)) => {
            tracing::debug!(target: TARGET, "request body not read: {e}");
            return Err(Closed("request body not read"));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let busy = BusyGuard::new(&busy);
    record.body_len = body.len();
    let json = if gzipped {
        match gunzip(&body, limits.max_body_bytes) {
            Ok(json) => Ok(json),
            Err(e) if e.too_large => return Ok(refuse(&shared, record, 413, e.message)),
            Err(e) => Err(e.message),
        }
    } else {
        Ok(body.to_vec())
    };
    record.payload = json.and_then(|j| decode_payload(&j));
    let (reply, strict) = {
        let mut st = shared.lock();
        (
            st.script.pop_front().unwrap_or(Reply::Validate),
            st.strict_lengths,
        )
    };
    let answer = match &reply {
        Reply::Validate => Some(validate(&mut record, strict)),
        Reply::Status(code) => Some(Answer::error(*code, &[format!("scripted {code}")])),
        Reply::Partial(n) => {
            let all = record.payload.clone().unwrap_or_default();
            let n = (*n).min(all.len());
            record.accepted = all.into_iter().skip(n).collect();
            Some(Answer::rejected(202, n, &["scripted partial".to_string()]))
        }
        Reply::Endless(code) => {
            let _ = validate(&mut record, strict);
            if !(200..300).contains(code) {
                record.accepted.clear();
            }
            None
        }
        Reply::Hang(_) | Reply::Reset => None,
    };
    record.status = match reply {
        Reply::Endless(code) => Some(code),
        _ => answer.as_ref().map(|a| a.status),
    };
    tracing::debug!(
        target: TARGET,
        measurements = record.measurement_count(),
        accepted = record.accepted.len(),
        status = ?record.status,
        reply = ?reply,
        "publish"
    );
    shared.record(record);
    match reply {
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            Err(Closed("scripted hang"))
        }
        Reply::Reset => {
            reset.store(true, Ordering::Relaxed);
            Err(Closed("scripted reset"))
        }
        Reply::Endless(code) => {
            let mut res = Response::new(ReplyBody::Endless {
                tick: Box::pin(tokio::time::sleep(Duration::ZERO)),
                _busy: busy,
            });
            *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(res)
        }
        _ => Ok(respond(answer.unwrap_or_else(Answer::ok))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_atlas_shaped() {
        let a = Answer::rejected(202, 2, &["x".into()]);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["type"], "partial");
        assert_eq!(v["errorCount"], 2);
        assert_eq!(v["message"][0], "x");
        let a = Answer::error(404, &["no".into()]);
        let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(
            (a.status, &v["type"], &v["errorCount"]),
            (404, &"error".into(), &0.into())
        );
        assert_eq!(Answer::ok().body, "{}");
    }
}
