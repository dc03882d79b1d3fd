//! A local Atlas-compatible receiver, behind the cargo feature `receiver`: real HTTP/1.1 on a
//! local port, decoding gzip and the publish payload as the Atlas aggregator does, validating it
//! (SPEC section 5), and answering as Atlas would (or as scripted, for failure tests).
//!
//! It is what the examples publish to when `SPECTATOR_URI` is not set, what
//! `cargo run --example receiver` runs on its own, and the loopback server of this project's
//! own tests (`spectator::testing::aggregator` re-exports it under the feature `testing`). It
//! runs on a thread of its own (with its own tokio runtime), so it works the same from
//! plain-thread programs and from async code of any runtime flavour, and keeps answering while
//! the caller's runtime is blocked.
//!
//! ```
//! use spectator::receiver::Aggregator;
//! use spectator::Registry;
//!
//! let receiver = Aggregator::start().unwrap();
//! let registry = Registry::builder().uri(&receiver.uri()).build();
//! registry.counter("server.numRequests", &[("status", "200")]).add(3.0);
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! rt.block_on(registry.publish());
//!
//! let got = receiver.accepted();
//! let requests = got.iter().find(|m| m.name() == "server.numRequests").unwrap();
//! assert_eq!(requests.tags["statistic"], "count");
//! assert_eq!((requests.op, requests.value), (0, 3.0));
//! ```
//!
//! To see what arrives, feed each step's requests to a [`LiveTable`]: it shows one row per
//! series with its rate per second and a sparkline of the last steps.
//!
//! # Faults
//!
//! Besides the scripted [`Reply`]s (statuses, partial answers, hangs, resets, responses that
//! never end), [`Aggregator::down`] closes the port and every open connection, as a crashed
//! aggregator would (new connections are refused), and [`Aggregator::up`] listens on the same
//! port again. [`Aggregator::start_down`] starts with the port closed.
//!
//! # Validation
//!
//! Always enforced (the measurement is rejected): `name` present, only the characters
//! `-._A-Za-z0-9~^`, no `atlas.*` keys, at most 20 user tags (tags other than `name`, `nf.*`),
//! op 0 or 10. The length rules (name 2..=255, keys 2..=60, values 1..=120) are *reported* in
//! [`ReceivedRequest::violations`] but only enforced with [`Aggregator::set_strict_lengths`],
//! because the conformance vectors use one-character names and keys (SPEC section 8).
//! Rejections are answered like Atlas: 202 `{"type":"partial","errorCount":n,"message":[..]}`
//! when some measurements failed, 400 when all did.
//!
//! # Scripted failures
//!
//! [`Aggregator::script`] makes the next requests fail in chosen ways ([`Reply`]: a status, a
//! partial answer, a hang, a reset connection), for tests of the publisher's retries.
//!
//! ```
//! use spectator::receiver::{Aggregator, Reply};
//! let agg = Aggregator::start().unwrap();
//! agg.script(Reply::Status(503), 2); // the next two POSTs get 503
//! assert!(agg.uri().ends_with("/api/v4/update"));
//! assert!(agg.requests().is_empty());
//! ```

mod table;

pub use table::LiveTable;

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the aggregator answers one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Decode, validate, and answer 200, 202 or 400 as Atlas would (the default).
    Validate,
    /// Answer this status with a small JSON body, accepting nothing.
    Status(u16),
    /// Answer 202 with this `errorCount`, accepting the rest of the batch.
    Partial(usize),
    /// Read the request, then say nothing for this long before closing the connection.
    Hang(Duration),
    /// Read the request, then reset the connection (TCP RST) without answering.
    Reset,
    /// Validate the request as [`Reply::Validate`] does and accept what it would, but answer
    /// with this status and a chunked body that never ends: a few bytes every 20 ms until the
    /// client gives up (or the aggregator goes [down](Aggregator::down) or is dropped).
    Endless(u16),
}

/// One measurement as the aggregator decoded it.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMeasurement {
    /// Every tag, including `name` and the common tags.
    pub tags: BTreeMap<String, String>,
    /// 0 (add) or 10 (max).
    pub op: u64,
    /// The value.
    pub value: f64,
}

impl ReceivedMeasurement {
    /// The `name` tag (empty when missing).
    pub fn name(&self) -> &str {
        self.tags.get("name").map_or("", String::as_str)
    }
}

/// One request as the aggregator saw it.
#[derive(Clone, Debug)]
pub struct ReceivedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Request target, e.g. `/api/v4/update`.
    pub path: String,
    /// Headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Body size on the wire (compressed).
    pub body_len: usize,
    /// The decoded measurements, or why the body could not be decoded.
    pub payload: Result<Vec<ReceivedMeasurement>, String>,
    /// Rule violations found in the payload, e.g. `measurement 3: key "x" is shorter than 2`.
    pub violations: Vec<String>,
    /// The status answered; `None` when the connection was hung or reset.
    pub status: Option<u16>,
    /// The measurements the aggregator accepted from this request.
    pub accepted: Vec<ReceivedMeasurement>,
}

impl ReceivedRequest {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Number of measurements decoded from the body (0 when it could not be decoded).
    pub fn measurement_count(&self) -> usize {
        self.payload.as_ref().map_or(0, Vec::len)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<ReceivedRequest>,
    script: VecDeque<Reply>,
    strict_lengths: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the serving thread is told to do.
enum Command {
    /// Listen on this (already bound) socket.
    Listen(std::net::TcpListener),
    /// Close the listener and every connection, then acknowledge.
    Down(std::sync::mpsc::Sender<()>),
}

/// A running receiver; stops when dropped.
pub struct Aggregator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    /// Starts an aggregator on a free port of 127.0.0.1.
    pub fn start() -> io::Result<Aggregator> {
        Aggregator::bind("127.0.0.1:0".parse().expect("valid socket address"))
    }

    /// Starts an aggregator on `addr` (port 0 picks a free one).
    pub fn bind(addr: SocketAddr) -> io::Result<Aggregator> {
        Aggregator::from_listener(std::net::TcpListener::bind(addr)?)
    }

    /// Starts an aggregator that accepts on `listener`.
    ///
    /// Binding first and serving later lets a program learn its URI before any thread starts,
    /// for example to set `SPECTATOR_URI` for the global registry, or to fork worker processes
    /// (a process should not fork while other threads run) and serve in the parent afterwards.
    ///
    /// ```
    /// use spectator::receiver::Aggregator;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let port = listener.local_addr().unwrap().port();
    /// let receiver = Aggregator::from_listener(listener).unwrap();
    /// assert_eq!(receiver.uri(), format!("http://127.0.0.1:{port}/api/v4/update"));
    /// ```
    pub fn from_listener(std_listener: std::net::TcpListener) -> io::Result<Aggregator> {
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let (stop, stop_rx) = watch::channel(false);
        let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = commands.send(Command::Listen(std_listener));
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("spectator-receiver".into())
            .spawn(move || rt.block_on(serve(s, stop_rx, commands_rx)))?;
        Ok(Aggregator {
            addr,
            shared,
            stop,
            commands,
            thread: Some(thread),
        })
    }

    /// Starts an aggregator on a free port of 127.0.0.1 that is [down](Aggregator::down):
    /// connections to [`uri`](Aggregator::uri) are refused until [`up`](Aggregator::up).
    pub fn start_down() -> io::Result<Aggregator> {
        let agg = Aggregator::start()?;
        agg.down();
        Ok(agg)
    }

    /// Stops listening and closes every open connection (requests in flight get no answer),
    /// like a crashed aggregator; returns once the port is closed. Scripted replies and the
    /// requests received so far are kept.
    pub fn down(&self) {
        let (ack, acked) = std::sync::mpsc::channel();
        if self.commands.send(Command::Down(ack)).is_ok() {
            let _ = acked.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Listens again on the same address after [`down`](Aggregator::down).
    ///
    /// # Errors
    /// When the port cannot be bound again (another process took it meanwhile).
    pub fn up(&self) -> io::Result<()> {
        let listener = std::net::TcpListener::bind(self.addr)?;
        listener.set_nonblocking(true)?;
        self.commands
            .send(Command::Listen(listener))
            .map_err(|_| io::Error::other("the aggregator thread has stopped"))
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The publish endpoint: `http://127.0.0.1:PORT/api/v4/update`.
    pub fn uri(&self) -> String {
        format!("http://{}/api/v4/update", self.addr)
    }

    /// Answers the next `times` requests with `reply` (after anything scripted before).
    pub fn script(&self, reply: Reply, times: usize) {
        let mut st = self.shared.lock();
        for _ in 0..times {
            st.script.push_back(reply.clone());
        }
    }

    /// Forgets any scripted replies not used yet.
    pub fn clear_script(&self) {
        self.shared.lock().script.clear();
    }

    /// Enforce the length rules of SPEC section 5 too (off by default; see the module docs).
    pub fn set_strict_lengths(&self, strict: bool) {
        self.shared.lock().strict_lengths = strict;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every request received so far, forgetting them.
    pub fn take_requests(&self) -> Vec<ReceivedRequest> {
        std::mem::take(&mut self.shared.lock().requests)
    }

    /// Every measurement accepted so far, in arrival order.
    pub fn accepted(&self) -> Vec<ReceivedMeasurement> {
        self.shared
            .lock()
            .requests
            .iter()
            .flat_map(|r| r.accepted.iter().cloned())
            .collect()
    }

    /// Sum of the values accepted so far for series named `name` (every tag combination).
    pub fn accepted_total(&self, name: &str) -> f64 {
        self.shared
            .lock()
            .requests
            .iter()
            .flat_map(|r| r.accepted.iter())
            .filter(|m| m.name() == name)
            .map(|m| m.value)
            .sum()
    }

    /// Blocks until at least `n` requests have arrived or `timeout` passed; says which.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.requests.len() < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Waits up to `timeout` for a request, then until the requests stop coming for a moment
    /// (so that the batches of one publish are taken together, at most one more second), and
    /// returns them all, forgetting them. Returns an empty vector when nothing came in time.
    ///
    /// One call per publish step gives a [`LiveTable`] its steps.
    pub fn next_requests(&self, timeout: Duration) -> Vec<ReceivedRequest> {
        const QUIET: Duration = Duration::from_millis(100);
        if !self.wait_for_requests(1, timeout) {
            return self.take_requests();
        }
        let end = Instant::now() + Duration::from_secs(1);
        let mut seen = self.shared.lock().requests.len();
        while Instant::now() < end && self.wait_for_requests(seen + 1, QUIET) {
            seen = self.shared.lock().requests.len();
        }
        self.take_requests()
    }

    /// Like [`wait_for_requests`](Aggregator::wait_for_requests) without blocking the
    /// runtime's thread.
    pub async fn wait_for_requests_async(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.shared.lock().requests.len() >= n {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Aggregator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
) {
    let mut listener: Option<TcpListener> = None;
    // Bumped by `down`: every connection task watches it and closes its socket.
    let (epoch, _) = watch::channel(0u64);
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
                    Err(e) => eprintln!("spectator receiver: {e}"),
                },
                Some(Command::Down(ack)) => {
                    listener = None;
                    epoch.send_modify(|e| *e += 1);
                    let _ = ack.send(());
                }
            },
            accepted = accept => {
                if let Ok((stream, _)) = accepted {
                    let mut closed = epoch.subscribe();
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        // `down` wins over anything the connection could still do.
                        tokio::select! {
                            biased;
                            _ = closed.changed() => {}
                            _ = connection(stream, shared) => {}
                        }
                    });
                }
            }
        }
    }
}

/// A parsed request head plus body.
struct RawRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        let req = match read_request(&mut stream, &mut buf).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(msg) => {
                let _ = respond(&mut stream, 400, &error_body(0, &[msg])).await;
                return;
            }
        };
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (reply, strict) = {
            let mut st = shared.lock();
            (
                st.script.pop_front().unwrap_or(Reply::Validate),
                st.strict_lengths,
            )
        };
        let payload = decode_body(&req);
        let mut record = ReceivedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body_len: req.body.len(),
            payload,
            violations: Vec::new(),
            status: None,
            accepted: Vec::new(),
        };
        let mut answer: Option<(u16, String)> = None;
        match &reply {
            Reply::Validate => {
                let (status, body) = validate_and_answer(&mut record, strict);
                answer = Some((status, body));
            }
            Reply::Status(code) => {
                answer = Some((*code, error_body(0, &[format!("scripted {code}")])));
            }
            Reply::Partial(n) => {
                let all = record.payload.clone().unwrap_or_default();
                let n = (*n).min(all.len());
                record.accepted = all.into_iter().skip(n).collect();
                answer = Some((
                    202,
                    format!(
                        r#"{{"type":"partial","errorCount":{n},"message":["scripted partial"]}}"#
                    ),
                ));
            }
            Reply::Endless(code) => {
                let _ = validate_and_answer(&mut record, strict);
                if !(200..300).contains(code) {
                    record.accepted.clear();
                }
            }
            Reply::Hang(_) | Reply::Reset => {}
        }
        record.status = match reply {
            Reply::Endless(code) => Some(code),
            _ => answer.as_ref().map(|(s, _)| *s),
        };
        {
            let mut st = shared.lock();
            st.requests.push(record);
        }
        shared.changed.notify_all();
        match reply {
            Reply::Hang(d) => {
                tokio::time::sleep(d).await;
                return;
            }
            Reply::Reset => {
                let _ = stream.set_zero_linger();
                return;
            }
            Reply::Endless(code) => {
                endless(&mut stream, code).await;
                return;
            }
            _ => {}
        }
        if let Some((status, body)) = answer {
            if respond(&mut stream, status, &body).await.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

/// Answers `status` with a chunked body that never ends, until the client closes.
async fn endless(stream: &mut TcpStream, status: u16) {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        reason(status)
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        // One-byte chunks of a JSON string that is never closed.
        if stream.write_all(b"1\r\n \r\n").await.is_err() || stream.flush().await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads one request; `Ok(None)` on a clean end of the connection.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<RawRequest>, String> {
    const MAX_HEAD: usize = 64 * 1024;
    const MAX_BODY: usize = 64 * 1024 * 1024;
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    buf.drain(..head_end + 4);
    let mut req = RawRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        return Err("chunked bodies are not supported; send Content-Length".into());
    }
    let len: usize = match req.header("content-length") {
        Some(v) => v.parse().map_err(|_| format!("bad content-length {v:?}"))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err("body too large".into());
    }
    while buf.len() < len {
        let mut chunk = vec![0u8; (len - buf.len()).min(64 * 1024)];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    req.body = buf.drain(..len).collect();
    Ok(Some(req))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn respond(stream: &mut TcpStream, status: u16, body: &str) -> io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.flush().await
}

fn error_body(count: usize, messages: &[String]) -> String {
    let kind = if count == 0 { "error" } else { "partial" };
    serde_json::json!({"type": kind, "errorCount": count, "message": messages}).to_string()
}

fn decode_body(req: &RawRequest) -> Result<Vec<ReceivedMeasurement>, String> {
    let gzipped = req
        .header("content-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let json = if gzipped {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&req.body[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("bad gzip body: {e}"))?;
        out
    } else {
        req.body.clone()
    };
    decode_payload(&json)
}

/// Decodes a publish payload (SPEC section 4) the way the Atlas aggregator reads it.
///
/// ```
/// use spectator::receiver::decode_payload;
/// let ms = decode_payload(
///     br#"[8,"a","count","foo","name","nf.app","statistic","x","y",4,4,2,5,1,6,7,3,0,0,1]"#,
/// ).unwrap();
/// assert_eq!(ms.len(), 1);
/// assert_eq!(ms[0].name(), "a");
/// assert_eq!(ms[0].tags["nf.app"], "foo");
/// assert_eq!((ms[0].op, ms[0].value), (0, 1.0));
/// ```
pub fn decode_payload(json: &[u8]) -> Result<Vec<ReceivedMeasurement>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| format!("bad JSON: {e}"))?;
    let arr = v.as_array().ok_or("payload is not a JSON array")?;
    let mut it = arr.iter();
    let uint = |x: Option<&serde_json::Value>, what: &str| -> Result<u64, String> {
        x.and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format!("expected {what} (an unsigned integer)"))
    };
    let n = uint(it.next(), "the string table size")? as usize;
    let mut table = Vec::with_capacity(n.min(arr.len()));
    for _ in 0..n {
        let s = it
            .next()
            .and_then(serde_json::Value::as_str)
            .ok_or("string table shorter than announced")?;
        table.push(s.to_string());
    }
    let lookup = |i: u64| -> Result<String, String> {
        table
            .get(i as usize)
            .cloned()
            .ok_or_else(|| format!("string index {i} out of range"))
    };
    let mut out = Vec::new();
    while let Some(t) = it.next() {
        let t = uint(Some(t), "a tag count")?;
        let mut tags = BTreeMap::new();
        for _ in 0..t {
            let k = lookup(uint(it.next(), "a key index")?)?;
            let v = lookup(uint(it.next(), "a value index")?)?;
            if tags.insert(k.clone(), v).is_some() {
                return Err(format!("tag {k:?} sent twice in one measurement"));
            }
        }
        let op = uint(it.next(), "an op")?;
        let value = it
            .next()
            .and_then(serde_json::Value::as_f64)
            .ok_or("expected a value (a number)")?;
        out.push(ReceivedMeasurement { tags, op, value });
    }
    Ok(out)
}

/// What the aggregator's rules (SPEC section 5) say about one measurement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Violations the aggregator always rejects for: missing name, characters outside
    /// `-._A-Za-z0-9^~`, `atlas.*` keys, more than 20 user tags, an op other than 0 or 10.
    pub rejected: Vec<String>,
    /// Length-rule violations (name 2..=255, keys 2..=60, values 1..=120), rejected only by a
    /// [strict](Aggregator::set_strict_lengths) aggregator.
    pub lengths: Vec<String>,
}

impl Verdict {
    /// Whether an aggregator accepts the measurement (`strict_lengths`: enforcing lengths too).
    pub fn accepted(&self, strict_lengths: bool) -> bool {
        self.rejected.is_empty() && (!strict_lengths || self.lengths.is_empty())
    }
}

/// Checks one decoded measurement against the aggregator's rules, as a request is validated.
///
/// ```
/// use spectator::testing::aggregator::{check_measurement, decode_payload};
/// let ms = decode_payload(br#"[4,"name","ok.name","x","y",2,2,3,0,1,0,1]"#).unwrap();
/// let verdict = check_measurement(&ms[0]);
/// assert!(verdict.rejected.is_empty());
/// assert_eq!(verdict.lengths.len(), 1); // key "x" is shorter than 2
/// assert!(verdict.accepted(false) && !verdict.accepted(true));
/// ```
pub fn check_measurement(m: &ReceivedMeasurement) -> Verdict {
    let (rejected, lengths) = check(m);
    Verdict { rejected, lengths }
}

/// Problems with one measurement: (rejected, reported-only).
fn check(m: &ReceivedMeasurement) -> (Vec<String>, Vec<String>) {
    let mut fatal = Vec::new();
    let mut length = Vec::new();
    let valid = |s: &str| s.chars().all(crate::rules::is_valid_char);
    match m.tags.get("name") {
        None => fatal.push("missing name".to_string()),
        Some(n) if !(2..=255).contains(&n.chars().count()) => {
            length.push(format!("name {n:?} is not 2..=255 characters"))
        }
        Some(_) => {}
    }
    let mut user_tags = 0;
    for (k, v) in &m.tags {
        if !valid(k) || !valid(v) {
            fatal.push(format!(
                "tag {k:?}={v:?} has characters outside -._A-Za-z0-9^~"
            ));
        }
        if k.starts_with("atlas.") {
            fatal.push(format!("key {k:?} is reserved (atlas.*)"));
        }
        if k == "name" {
            continue;
        }
        if !k.starts_with("nf.") && !k.starts_with("atlas.") {
            user_tags += 1;
        }
        if !(2..=60).contains(&k.chars().count()) {
            length.push(format!("key {k:?} is not 2..=60 characters"));
        }
        if !(1..=120).contains(&v.chars().count()) {
            length.push(format!("value {v:?} of {k:?} is not 1..=120 characters"));
        }
    }
    if user_tags > 20 {
        fatal.push(format!("{user_tags} user tags, at most 20 allowed"));
    }
    if m.op != 0 && m.op != 10 {
        fatal.push(format!("op {} is neither 0 nor 10", m.op));
    }
    (fatal, length)
}

fn validate_and_answer(record: &mut ReceivedRequest, strict: bool) -> (u16, String) {
    let ms = match &record.payload {
        Ok(ms) => ms.clone(),
        Err(e) => return (400, error_body(0, std::slice::from_ref(e))),
    };
    let mut errors = Vec::new();
    for (i, m) in ms.into_iter().enumerate() {
        let (fatal, length) = check(&m);
        for v in fatal.iter().chain(&length) {
            record.violations.push(format!("measurement {i}: {v}"));
        }
        if fatal.is_empty() && (!strict || length.is_empty()) {
            record.accepted.push(m);
        } else {
            errors.extend(fatal.into_iter().chain(length).map(|v| format!("{i}: {v}")));
        }
    }
    let total = record.measurement_count();
    let failed = total - record.accepted.len();
    if failed == 0 {
        (200, "{}".to_string())
    } else if failed == total {
        (400, error_body(failed, &errors))
    } else {
        (
            202,
            serde_json::json!({"type": "partial", "errorCount": failed, "message": errors})
                .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tags: &[(&str, &str)]) -> ReceivedMeasurement {
        ReceivedMeasurement {
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            op: 0,
            value: 1.0,
        }
    }

    #[test]
    fn rules() {
        assert_eq!(
            check(&m(&[("name", "ok.name"), ("key", "v")])),
            (vec![], vec![])
        );
        let (f, l) = check(&m(&[("name", "a"), ("x", "y")]));
        assert!(f.is_empty());
        assert_eq!(l.len(), 2);
        assert_eq!(check(&m(&[("key", "v")])).0.len(), 1);
        assert_eq!(check(&m(&[("name", "nm"), ("atlas.x", "v")])).0.len(), 1);
        assert_eq!(check(&m(&[("name", "n m")])).0.len(), 1);
        let many: Vec<(String, String)> = (0..21).map(|i| (format!("k{i}"), "v".into())).collect();
        let mut tags: Vec<(&str, &str)> =
            many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        tags.push(("name", "nm"));
        tags.push(("nf.app", "a"));
        assert_eq!(check(&m(&tags)).0.len(), 1);
    }

    #[test]
    fn decode_errors_are_messages() {
        assert!(decode_payload(b"{}").is_err());
        assert!(decode_payload(b"[2,\"a\"]").is_err());
        assert!(decode_payload(b"[1,\"a\",1,0,5,0,1]").is_err());
        assert!(decode_payload(b"[1,\"a\",1,0,0]").is_err());
        assert_eq!(decode_payload(b"[1,\"name\"]").unwrap(), vec![]);
    }

    #[test]
    fn values_decode_exactly() {
        // Found by a property test: serde_json's default float parsing is off by one ulp
        // here; the `float_roundtrip` feature (enabled by `testing`) parses it exactly.
        let v = 943972.4019973897_f64;
        let json = format!(
            "[2,\"name\",\"nm\",1,0,1,0,{}]",
            serde_json::to_string(&v).unwrap()
        );
        assert_eq!(decode_payload(json.as_bytes()).unwrap()[0].value, v);
    }
}
