//! A local Atlas-compatible receiver, behind the cargo feature `receiver`: real HTTP/1.1 on a
//! local port, decoding gzip and the publish payload as the Atlas aggregator does, validating it
//! with Atlas's rules, and answering as Atlas would (or as scripted, for failure tests). Beside
//! it, [`spectatord::SpectatordListener`] stands in for the spectatord sidecar: it takes
//! protocol lines over UDP or a unix datagram socket and aggregates them per step.
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
//! # HTTP
//!
//! Only `POST /api/v4/update` is a publish. Any other method is answered `405` (with
//! `Allow: POST`), any other path `404`, each with a JSON body saying so; both are recorded in
//! [`Aggregator::requests`] with the answered status. Bodies may be sent with `Content-Length`
//! or chunked, plain or gzip (`Content-Encoding: gzip`); `Expect: 100-continue` is honoured,
//! and pipelined requests are answered in order.
//!
//! The server stands up to misbehaving clients (all limits are set with
//! [`Aggregator::builder`]):
//! * the head and the body of a request must both arrive within the
//!   [request timeout](AggregatorBuilder::request_timeout) (default 30 s, also the longest an
//!   idle keep-alive connection is kept), or the connection is closed;
//! * a body larger than [`max_body_bytes`](AggregatorBuilder::max_body_bytes) (default 64 MiB),
//!   on the wire or once inflated, is answered `413`;
//! * a request head over 64 KiB or with more than 100 headers, or one that is not HTTP/1.x,
//!   closes the connection (hyper closes it without an answer);
//! * at most [`max_connections`](AggregatorBuilder::max_connections) (default 512) are open at
//!   once; a connection beyond it closes the oldest one that is not being answered (a stalled
//!   or idle client), so a flood of stalled connections can neither exhaust file descriptors nor
//!   keep well-behaved clients out.
//!
//! The server is [hyper](https://docs.rs/hyper)'s HTTP/1.1 implementation rather than a parser
//! of this crate's own: hyper is already compiled in for the publisher's HTTP client, so it
//! costs one more feature of a dependency, and it brings chunked bodies, `100-continue`,
//! pipelining, header limits and the header-read timeout, each of which a hand-written parser
//! would have to get right (and fuzz) on its own. Measured against the hand-written server it
//! replaced (release build, one keep-alive connection, 2 shared cores): publishes of 1000
//! measurements, gzipped, 151/s against 126/s (p99 11 ms against 16 ms; decoding dominates);
//! tiny requests 13 000/s against 30 000/s, far beyond what publishers send (one request per
//! batch per step). The scripted faults below act on the connection underneath hyper (a reset
//! is a zero-linger close of the socket).
//!
//! Logging goes through [`tracing`] under the target `spectator::receiver`.
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
//! because this project's conformance vectors use one-character names and keys.
//! Rejections are answered like Atlas: 202 `{"type":"partial","errorCount":n,"message":[..]}`
//! when some measurements failed, 400 when all did. The rules themselves are Atlas's publish
//! validation (<https://netflix.github.io/atlas-docs/api/publish/>).
//!
//! # Scripted failures
//!
//! [`Aggregator::script`] makes the next publishes fail in chosen ways ([`Reply`]: a status, a
//! partial answer, a hang, a reset connection), for tests of the publisher's retries.
//!
//! ```
//! use spectator::receiver::{Aggregator, Reply};
//! let agg = Aggregator::start().unwrap();
//! agg.script(Reply::Status(503), 2); // the next two POSTs get 503
//! assert!(agg.uri().ends_with("/api/v4/update"));
//! assert!(agg.requests().is_empty());
//! ```

mod decode;
mod http;
pub mod spectatord;
mod table;
mod validate;

pub use decode::decode_payload;
pub use table::LiveTable;
pub use validate::{check_measurement, Verdict};

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The tracing target of everything the receiver logs.
const TARGET: &str = "spectator::receiver";

/// The path of the publish endpoint.
pub const PUBLISH_PATH: &str = "/api/v4/update";

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

/// The limits a receiver enforces on its clients; see [`AggregatorBuilder`].
#[derive(Clone, Copy, Debug)]
struct Limits {
    request_timeout: Duration,
    max_connections: usize,
    max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Default)]
struct State {
    requests: Vec<ReceivedRequest>,
    script: VecDeque<Reply>,
    strict_lengths: bool,
}

/// Counters of what the server did to misbehaving clients.
#[derive(Default)]
struct Counters {
    timed_out: AtomicU64,
    shed: AtomicU64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    counters: Counters,
    limits: Limits,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one request and wakes the waiters.
    fn record(&self, request: ReceivedRequest) {
        self.lock().requests.push(request);
        self.changed.notify_all();
    }
}

/// What the serving thread is told to do.
enum Command {
    /// Listen on this (already bound) socket.
    Listen(std::net::TcpListener),
    /// Close the listener and every connection, then acknowledge.
    Down(std::sync::mpsc::Sender<()>),
}

/// Configures an [`Aggregator`]'s limits before it starts.
///
/// ```
/// use spectator::receiver::Aggregator;
/// use std::time::Duration;
///
/// let agg = Aggregator::builder()
///     .request_timeout(Duration::from_secs(5))
///     .max_connections(64)
///     .max_body_bytes(1 << 20)
///     .start()
///     .unwrap();
/// assert!(agg.uri().starts_with("http://127.0.0.1:"));
/// ```
#[derive(Debug, Default)]
pub struct AggregatorBuilder {
    limits: Limits,
    strict_lengths: bool,
}

impl AggregatorBuilder {
    /// How long a client may take to send a request's head, and then its body (each), and how
    /// long an idle keep-alive connection is kept; the connection is closed after it. Default
    /// 30 s; at least 1 ms.
    pub fn request_timeout(mut self, timeout: Duration) -> AggregatorBuilder {
        self.limits.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// At most this many connections open at once (default 512, at least 1). A connection
    /// beyond it closes the oldest connection that is not being answered.
    pub fn max_connections(mut self, n: usize) -> AggregatorBuilder {
        self.limits.max_connections = n.max(1);
        self
    }

    /// Largest request body accepted, both as sent and once gunzipped (default 64 MiB);
    /// larger ones are answered `413`.
    pub fn max_body_bytes(mut self, n: usize) -> AggregatorBuilder {
        self.limits.max_body_bytes = n;
        self
    }

    /// Enforce the length rules too (see [`Aggregator::set_strict_lengths`]).
    pub fn strict_lengths(mut self, strict: bool) -> AggregatorBuilder {
        self.strict_lengths = strict;
        self
    }

    /// Starts on a free port of 127.0.0.1.
    pub fn start(self) -> io::Result<Aggregator> {
        self.bind(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)))
    }

    /// Starts on `addr` (port 0 picks a free one).
    pub fn bind(self, addr: SocketAddr) -> io::Result<Aggregator> {
        self.from_listener(std::net::TcpListener::bind(addr)?)
    }

    /// Starts accepting on `listener` (see [`Aggregator::from_listener`]).
    pub fn from_listener(self, std_listener: std::net::TcpListener) -> io::Result<Aggregator> {
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                strict_lengths: self.strict_lengths,
                ..State::default()
            }),
            changed: Condvar::new(),
            counters: Counters::default(),
            limits: self.limits,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (commands, commands_rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = commands.send(Command::Listen(std_listener));
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("spectator-receiver".into())
            .spawn(move || rt.block_on(http::serve(s, stop_rx, commands_rx)))?;
        tracing::debug!(target: TARGET, %addr, limits = ?self.limits, "receiver listening");
        Ok(Aggregator {
            addr,
            shared,
            stop,
            commands,
            thread: Some(thread),
        })
    }
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
    /// A builder for an aggregator with other limits than the defaults.
    pub fn builder() -> AggregatorBuilder {
        AggregatorBuilder::default()
    }

    /// Starts an aggregator on a free port of 127.0.0.1.
    pub fn start() -> io::Result<Aggregator> {
        Aggregator::builder().start()
    }

    /// Starts an aggregator on `addr` (port 0 picks a free one).
    pub fn bind(addr: SocketAddr) -> io::Result<Aggregator> {
        Aggregator::builder().bind(addr)
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
        Aggregator::builder().from_listener(std_listener)
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
        format!("http://{}{PUBLISH_PATH}", self.addr)
    }

    /// Answers the next `times` publishes with `reply` (after anything scripted before).
    /// Requests to other paths or with other methods do not use the script.
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

    /// Enforce Atlas's length rules too: names of 2 to 255 characters, keys of 2 to 60,
    /// values of 1 to 120 (off by default; see the module docs).
    pub fn set_strict_lengths(&self, strict: bool) {
        self.shared.lock().strict_lengths = strict;
    }

    /// Connections closed because a request's head or body did not arrive within the
    /// [request timeout](AggregatorBuilder::request_timeout) (idle keep-alive connections
    /// closed by it included).
    pub fn timed_out_connections(&self) -> u64 {
        self.shared.counters.timed_out.load(Ordering::Relaxed)
    }

    /// Connections closed to make room under the
    /// [connection cap](AggregatorBuilder::max_connections).
    pub fn shed_connections(&self) -> u64 {
        self.shared.counters.shed.load(Ordering::Relaxed)
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
