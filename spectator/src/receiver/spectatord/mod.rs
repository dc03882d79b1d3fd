//! A local stand-in for [spectatord](https://github.com/Netflix-Skunkworks/spectatord), the
//! metrics sidecar today's Spectator clients (spectator-py 1.x, spectator-go 2.x,
//! spectator-cpp, this crate's spectatord output) write protocol lines to.
//!
//! [`SpectatordListener`] binds a UDP port or a unix datagram socket, parses every line as
//! spectatord does and aggregates them per step as spectatord's meters do; [`take_step`]
//! returns what spectatord would forward to Atlas for the lines received since the previous
//! step, as [`ReceivedMeasurement`]s (tags including `name` and `statistic`, op 0 or 10), so
//! they can be compared with what the Atlas HTTP output sends, or shown in a
//! [`LiveTable`](super::LiveTable).
//!
//! # The protocol
//!
//! A datagram holds lines separated by `\n`; each line is
//! `TYPE[,OPTION]:NAME[,KEY=VALUE]*:VALUE` (reference:
//! <https://github.com/Netflix-Skunkworks/spectatord#message-format>).
//!
//! | type | meter | forwarded per step | op |
//! |---|---|---|---|
//! | `c` | counter | `statistic=count` (a `statistic` tag on the line is kept): the sum of the positive values | add |
//! | `g` | gauge (`g,TTL:` sets a TTL in seconds) | `statistic=gauge` (kept if on the line): the last value; a NaN stops it (nothing sent) | max |
//! | `m` | max gauge | `statistic=max` (always): the largest value | max |
//! | `t` | timer, seconds | `count`, `totalTime`, `totalOfSquares`, `max` (seconds; recorded as whole nanoseconds, negatives ignored) | add, max |
//! | `d` | distribution summary | `count`, `totalAmount`, `totalOfSquares`, `max` (negatives ignored) | add, max |
//! | `T` | percentile timer | as `t`, plus `statistic=percentile,percentile=T00XX` bucket counts | add |
//! | `D` | percentile distribution summary | as `d` on the value truncated to an integer, plus `percentile=D00XX` bucket counts | add |
//! | `A` | age gauge (value: epoch seconds of the last success, `0` for now) | `statistic=gauge`: seconds since then, every step from the first line on | max |
//! | `C` | monotonic counter | `statistic=count`: the increase since the previous step (nothing at the first sample or when it went down) | add |
//! | `U` | monotonic counter of `u64` | as `C`, wrapping around `u64::MAX` | add |
//! | `X` | monotonic counter sampled at a time (`X,EPOCH_MS:`) | `statistic=count`: the increase per second between the last two samples | add |
//!
//! Names, keys and values are sanitised as spectatord does: every byte outside
//! `-._A-Za-z0-9~^` becomes `_`. A line that does not parse (no name, no value, an unknown type,
//! a gauge with a TTL ≤ 0, ...) is counted in [`parse_errors`](SpectatordListener::parse_errors)
//! and skipped; characters after a valid value are ignored, as spectatord does.
//!
//! What the stand-in leaves out: spectatord's common tags (`nf.app`, ... from the host), its
//! validation and length limits, and the repetition of a gauge across steps: spectatord keeps
//! reporting a gauge's last value for its TTL (15 minutes by default), while [`take_step`]
//! reports gauges set by the step's own lines (a client that aggregates, like this crate,
//! sends each step's gauges anyway). Age gauges, monotonic counters and their samples are kept
//! across steps, as spectatord keeps them.
//!
//! ```
//! use spectator::receiver::spectatord::SpectatordListener;
//! use std::time::Duration;
//!
//! let listener = SpectatordListener::bind_udp("127.0.0.1:0").unwrap();
//! let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
//! let addr = listener.location().trim_start_matches("udp://").to_string();
//! socket.send_to(b"c:server.numRequests,status=200:2\nc:server.numRequests,status=200:3", &addr).unwrap();
//! assert!(listener.wait_for_lines(2, Duration::from_secs(5)));
//! let step = listener.take_step();
//! assert_eq!(step.len(), 1);
//! assert_eq!(step[0].tags["statistic"], "count");
//! assert_eq!((step[0].op, step[0].value), (0, 5.0));
//! ```
//!
//! [`take_step`]: SpectatordListener::take_step

mod aggregate;
mod parse;

pub use aggregate::LineAggregator;
pub use parse::{parse_bytes, parse_line, LineType, ParseError, ParsedLine};

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{ReceivedMeasurement, TARGET};

/// What the listener threads share.
struct Inner {
    state: Mutex<ListenerState>,
    arrived: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct ListenerState {
    lines: Vec<String>,
    sizes: Vec<usize>,
    aggregator: LineAggregator,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, ListenerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn datagram(&self, data: &[u8]) {
        let errors = {
            let mut st = self.lock();
            st.sizes.push(data.len());
            let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
            for line in data[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                st.lines.push(String::from_utf8_lossy(line).into_owned());
            }
            st.aggregator.ingest_datagram(data)
        };
        self.arrived.notify_all();
        for e in errors {
            tracing::debug!(target: TARGET, "spectatord line skipped: {e}");
        }
    }
}

/// How long a receiving thread blocks before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Receive buffer: the largest UDP datagram, with room to spare for unix ones.
const MAX_DATAGRAM: usize = 256 * 1024;

enum Socket {
    Udp(std::net::UdpSocket),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixDatagram),
}

impl Socket {
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Udp(s) => s.recv(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.recv(buf),
        }
    }
}

/// A spectatord stand-in on one socket: receives protocol lines and aggregates them per step
/// (see the [module docs](self)). Stops, and removes its unix socket file, when dropped.
pub struct SpectatordListener {
    inner: Arc<Inner>,
    location: String,
    unix_path: Option<PathBuf>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SpectatordListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectatordListener")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SpectatordListener {
    /// Listens on a UDP address, e.g. `127.0.0.1:1234` (port 0 picks a free one).
    pub fn bind_udp(addr: &str) -> io::Result<SpectatordListener> {
        let socket = std::net::UdpSocket::bind(addr)?;
        let location = format!("udp://{}", socket.local_addr()?);
        socket.set_read_timeout(Some(POLL))?;
        SpectatordListener::spawn(Socket::Udp(socket), location, None)
    }

    /// Listens on a unix datagram socket at `path`, creating its directory if needed and
    /// replacing a socket already there (as spectatord does; any other kind of file is left
    /// alone and is an error).
    #[cfg(unix)]
    pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<SpectatordListener> {
        use std::os::unix::fs::FileTypeExt;
        let path = std::path::absolute(path.as_ref())?;
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_socket() {
                std::fs::remove_file(&path)?;
            } else {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ));
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let socket = std::os::unix::net::UnixDatagram::bind(&path)?;
        socket.set_read_timeout(Some(POLL))?;
        let location = format!("unix://{}", path.display());
        SpectatordListener::spawn(Socket::Unix(socket), location, Some(path))
    }

    /// Unix datagram sockets exist on unix only.
    #[cfg(not(unix))]
    pub fn bind_unix(path: impl AsRef<Path>) -> io::Result<SpectatordListener> {
        let _ = path;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix datagram sockets need a unix platform",
        ))
    }

    fn spawn(
        socket: Socket,
        location: String,
        unix_path: Option<PathBuf>,
    ) -> io::Result<SpectatordListener> {
        let inner = Arc::new(Inner {
            state: Mutex::new(ListenerState::default()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let shared = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("spectatord-listener".into())
            .spawn(move || {
                let mut buf = vec![0u8; MAX_DATAGRAM];
                while !shared.stop.load(Ordering::Relaxed) {
                    match socket.recv(&mut buf) {
                        Ok(n) => shared.datagram(&buf[..n]),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(e) => {
                            tracing::warn!(target: TARGET, "spectatord listener: {e}");
                            std::thread::sleep(POLL);
                        }
                    }
                }
            })?;
        tracing::debug!(target: TARGET, %location, "spectatord listener bound");
        Ok(SpectatordListener {
            inner,
            location,
            unix_path,
            thread: Some(thread),
        })
    }

    /// Where a client sends to, in the form of an output location:
    /// `udp://127.0.0.1:PORT` or `unix:///path`.
    pub fn location(&self) -> String {
        self.location.clone()
    }

    /// Every line received so far, in arrival order (parsed or not).
    pub fn lines(&self) -> Vec<String> {
        self.inner.lock().lines.clone()
    }

    /// Every line received so far, forgetting them (a long-running listener calls it to keep
    /// its memory bounded).
    pub fn take_lines(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().lines)
    }

    /// The size of every datagram received so far, in bytes.
    pub fn datagram_sizes(&self) -> Vec<usize> {
        self.inner.lock().sizes.clone()
    }

    /// Lines skipped because they did not parse.
    pub fn parse_errors(&self) -> u64 {
        self.inner.lock().aggregator.parse_errors()
    }

    /// Lines parsed and aggregated so far.
    pub fn parsed_lines(&self) -> u64 {
        self.inner.lock().aggregator.parsed_lines()
    }

    /// Blocks until at least `n` lines have been received (since the start, or since the last
    /// [`take_lines`](SpectatordListener::take_lines)) or `timeout` passed; says which.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut st = self.inner.lock();
        while st.lines.len() < n {
            let now = Instant::now();
            if now >= end {
                return false;
            }
            st = self
                .inner
                .arrived
                .wait_timeout(st, end - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// What spectatord would forward to Atlas for the lines received since the previous call
    /// (see [`LineAggregator::take_step`]).
    pub fn take_step(&self) -> Vec<ReceivedMeasurement> {
        self.inner.lock().aggregator.take_step()
    }
}

impl Drop for SpectatordListener {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
    }
}
