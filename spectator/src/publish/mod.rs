//! Publishing: at each step the registry is polled and the measurements go to one output.
//!
//! - [`Output`]: where a step goes. One variant per kind of destination, each in its own file:
//!   `atlas/` (the Atlas aggregator over HTTP: encode, gzip, POST with retries) and `lines`
//!   (spectatord's protocol lines over UDP, a unix datagram socket, a file, stdout/stderr or
//!   memory). Adding an output is one file and one arm in [`Output::send`].
//! - `publisher`: the background loop behind [`Publisher`], which drives
//!   [`Registry::publish`](crate::Registry::publish) every step and publishes once more when
//!   stopped, so nothing recorded is lost.
//!
//! # Self-metrics
//!
//! After each publish the registry's own counters are updated and go out with the next one:
//! `spectator.measurements{id=sent}` and `spectator.measurements{id=dropped,error=…}` with
//! `error=validation` (the aggregator rejected them: 202 and 400 answers), `http-error` (other
//! refusing statuses, and kept batches dropped from the bounded queue after 429/5xx), `other`
//! (kept batches dropped after connection failures) and `output` (a spectatord socket was
//! missing, refused the datagram or was full, or a file write failed). `spectator.publish.panics`
//! counts publish steps that a panic (a bug) ended; the loop carries on (see `publisher`).
//!
//! Logs go to the tracing targets `spectator::registry` (loop) and `spectator::http` (POSTs).

#[cfg(feature = "atlas")]
pub(crate) mod atlas;
mod lines;
mod publisher;

use std::sync::atomic::{AtomicU32, Ordering};

use crate::config::{Config, Location};
use crate::meter::Step;

pub(crate) use publisher::LoopPlace;
pub use publisher::Publisher;

/// What one publish did. Counts are measurements unless said otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishReport {
    /// Accepted by the aggregator, or handed to the spectatord socket / file / memory.
    pub sent: usize,
    /// Lost for good during this publish: the sum of the `dropped_*` fields.
    pub dropped: usize,
    /// Of `dropped`: rejected by the aggregator (202 `errorCount`, 400).
    pub dropped_validation: usize,
    /// Of `dropped`: refused by another HTTP status, or pushed out of the pending queue after
    /// 429/5xx answers.
    pub dropped_http: usize,
    /// Of `dropped`: pushed out of the pending queue after connection errors or timeouts.
    pub dropped_other: usize,
    /// Of `dropped`: a line output could not deliver them (spectatord's socket missing,
    /// refusing or full, a line longer than a datagram, a failed write).
    pub dropped_output: usize,
    /// Batches (POST bodies, or datagrams) built; a POST may take up to 3 attempts.
    pub batches: usize,
    /// Failed POST attempts (429, 5xx, connection errors, timeouts), retried ones included.
    pub errors: usize,
    /// Kept for the next publish after failing every attempt.
    pub pending: usize,
}

impl PublishReport {
    /// Sums the `dropped_*` fields into `dropped`.
    fn total(mut self) -> PublishReport {
        self.dropped =
            self.dropped_validation + self.dropped_http + self.dropped_other + self.dropped_output;
        self
    }

    /// The drops by the `error` tag of `spectator.measurements{id=dropped}`.
    pub(crate) fn drops(&self) -> [(&'static str, usize); 4] {
        [
            ("validation", self.dropped_validation),
            ("http-error", self.dropped_http),
            ("other", self.dropped_other),
            ("output", self.dropped_output),
        ]
    }
}

/// Why [`Registry::start`](crate::Registry::start) could not start publishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The registry has no output: it records but never publishes.
    #[error(
        "the registry has no output (set SPECTATOR_URI or SPECTATOR_OUTPUT_LOCATION, or \
         RegistryBuilder::uri or ::output_location)"
    )]
    NoUri,
    /// The publish URI is not an absolute http(s) URL.
    #[error("invalid publish uri {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as configured.
        uri: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The output location is none of the accepted forms.
    #[error("invalid output location {location:?}: {reason}")]
    InvalidLocation {
        /// The location as configured.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// This registry already has a running publisher.
    #[error("a publisher is already running for this registry")]
    AlreadyStarted,
    /// The HTTP client (TLS setup) could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The background thread or its runtime could not be started.
    #[error("cannot start the publishing thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Which connection a publish may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Connection {
    /// The output's own, kept between steps.
    Shared,
    /// A new one, for a final publish on a thread of its own: pooled HTTP connections belong
    /// to the runtime that opened them, which the caller may be blocking.
    Fresh,
}

/// Where a step's measurements go.
pub(crate) enum Output {
    /// The Atlas aggregator, over HTTP.
    #[cfg(feature = "atlas")]
    Atlas(atlas::AtlasOutput),
    /// spectatord protocol lines: a socket, a file, a stream or memory.
    Lines(lines::LineOutput),
    /// Record, never send.
    None,
    /// A location that cannot be used; the error says why.
    Invalid(StoredError),
}

/// A configuration error kept for every later `start`/`publish` to report
/// ([`PublishError`] holds an `io::Error`, which cannot be cloned).
#[derive(Clone, Debug)]
pub(crate) enum StoredError {
    InvalidUri {
        uri: String,
        reason: String,
    },
    InvalidLocation {
        location: String,
        reason: String,
    },
    #[cfg_attr(not(feature = "atlas"), allow(dead_code))]
    Client(String),
}

impl From<StoredError> for PublishError {
    fn from(e: StoredError) -> PublishError {
        match e {
            StoredError::InvalidUri { uri, reason } => PublishError::InvalidUri { uri, reason },
            StoredError::InvalidLocation { location, reason } => {
                PublishError::InvalidLocation { location, reason }
            }
            StoredError::Client(e) => PublishError::Client(e),
        }
    }
}

impl Output {
    /// The output `config` asks for.
    pub(crate) fn new(config: &Config) -> Output {
        match config.location() {
            Err((location, reason)) => {
                Output::Invalid(StoredError::InvalidLocation { location, reason })
            }
            Ok(Location::None) => Output::None,
            #[cfg(feature = "atlas")]
            Ok(Location::Atlas(uri)) => match atlas::AtlasOutput::new(&uri) {
                Ok(o) => Output::Atlas(o),
                Err(e) => Output::Invalid(e),
            },
            #[cfg(not(feature = "atlas"))]
            Ok(Location::Atlas(uri)) => Output::Invalid(StoredError::InvalidUri {
                uri,
                reason: "this build has no HTTP output (enable the `atlas` feature)".into(),
            }),
            Ok(location) => Output::Lines(lines::LineOutput::new(location, config)),
        }
    }

    /// Why nothing can be published, if so.
    pub(crate) fn check(&self, config: &Config) -> Result<(), PublishError> {
        match self {
            Output::None => Err(PublishError::NoUri),
            Output::Invalid(e) => Err(e.clone().into()),
            #[cfg(feature = "atlas")]
            Output::Atlas(a) => a.check(config),
            Output::Lines(_) => {
                let _ = config;
                Ok(())
            }
        }
    }

    /// Sends one step (common tags not yet applied). The Atlas output sends its
    /// measurements; the spectatord output follows its line hints (age gauges as `A:` lines,
    /// gauges with a TTL as `g,TTL:` lines).
    pub(crate) async fn send(
        &self,
        step: Step,
        config: &Config,
        connection: Connection,
    ) -> PublishReport {
        let report = match self {
            #[cfg(feature = "atlas")]
            Output::Atlas(a) => a.send(step.measurements, config, connection).await,
            Output::Lines(l) => l.send_step(step.measurements, &step.hints),
            Output::None | Output::Invalid(_) => {
                let _ = (step, config, connection);
                PublishReport::default()
            }
        };
        report.total()
    }

    /// The lines a `memory` output holds, drained; empty for other outputs.
    pub(crate) fn take_written_lines(&self) -> Vec<String> {
        match self {
            Output::Lines(l) => l.take_written_lines(),
            _ => Vec::new(),
        }
    }
}

/// A registry's publishing state: its output, and whether a loop is running. Not on the
/// recording path.
///
/// Fork-aware: the running loop is tagged with the id of the process that started it. A
/// forked child does not have the parent's loop thread, so there the loop counts as not
/// running (and each output opens its own connections in the child).
pub(crate) struct Outlet {
    pub(crate) output: Output,
    /// Id of the process whose publish loop is running; 0 when none is.
    running: AtomicU32,
}

impl Outlet {
    pub(crate) fn new(config: &Config) -> Outlet {
        Outlet {
            output: Output::new(config),
            running: AtomicU32::new(0),
        }
    }

    /// Marks a loop as running in this process; false when one already is.
    pub(crate) fn claim(&self) -> bool {
        let me = std::process::id();
        let mut current = self.running.load(Ordering::SeqCst);
        loop {
            if current == me {
                return false;
            }
            // 0, or a loop of the process this one was forked from: its thread is not here.
            match self
                .running
                .compare_exchange(current, me, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Marks this process's loop as stopped.
    pub(crate) fn release(&self) {
        let _ = self.running.compare_exchange(
            std::process::id(),
            0,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}
