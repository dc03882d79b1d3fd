//! Publishing to the Atlas aggregator: payload encoding, HTTP with retries, and the background
//! loop.
//!
//! - [`encode`]: the wire format of SPEC section 4 (string table, indexes, gzip).
//! - `Registry::publish` polls the registry once and sends every batch now.
//! - `Registry::start` runs that every `frequency`, aligned to wall-clock step boundaries, and
//!   returns a [`Publisher`] whose [`stop`](Publisher::stop) /
//!   [`shutdown`](Publisher::shutdown) end the loop with one final publish.
//!
//! # Delivery
//!
//! Each POST holds at most `batch_size` measurements. 429, 5xx, connection errors and timeouts
//! are retried with backoff (100 ms, then 400 ms; 3 attempts in all), never past the end of the
//! step. A batch that still fails is kept and sent first at the next publish; at most
//! 10 × `batch_size` measurements are kept, beyond that the oldest are dropped and counted.
//! 202 answers count their `errorCount` as dropped, 400 drops the whole batch, any other
//! non-2xx status (401, 404, 413, ...) drops the batch too (retrying would not help).
//!
//! # Self-metrics
//!
//! After each publish the registry's own counters are updated and go out with the next one:
//! `spectator.measurements{id=sent}` and
//! `spectator.measurements{id=dropped,error=validation|http-error|other}` (`validation`: 202 and
//! 400 answers; `http-error`: other refusing statuses, and kept batches dropped from the bounded
//! queue after 429/5xx; `other`: kept batches dropped after transport failures).
//!
//! Logs go to the tracing targets `spectator::registry` (loop) and `spectator::http` (POSTs).

pub mod encode;
pub(crate) mod http;
mod publisher;
mod send;

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, OnceLock};

use crate::measurement::Measurement;

pub(crate) use publisher::LoopPlace;
pub use publisher::Publisher;

/// What one publish did. Counts are measurements unless said otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishReport {
    /// Accepted by the aggregator.
    pub sent: usize,
    /// Lost for good during this publish: rejected by the aggregator (validation), refused by
    /// an HTTP error that retrying cannot fix, or pushed out of the bounded pending queue.
    pub dropped: usize,
    /// Of `dropped`: rejected by the aggregator (202 `errorCount`, 400).
    pub dropped_validation: usize,
    /// Of `dropped`: refused by another HTTP status, or pushed out of the pending queue after
    /// 429/5xx answers.
    pub dropped_http: usize,
    /// Of `dropped`: pushed out of the pending queue after connection errors or timeouts.
    pub dropped_other: usize,
    /// Batches (POST bodies) built; each may take up to 3 attempts.
    pub batches: usize,
    /// Failed POST attempts (429, 5xx, connection errors, timeouts), retried ones included.
    pub errors: usize,
    /// Kept for the next publish after failing every attempt.
    pub pending: usize,
    /// Not sent because their value was NaN or infinite.
    pub skipped: usize,
}

/// Why [`Registry::start`](crate::Registry::start) could not start publishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry has no publish URI: it records but never publishes.
    #[error("the registry has no publish uri (set SPECTATOR_URI or RegistryBuilder::uri)")]
    NoUri,
    /// The publish URI is not an absolute http(s) URL.
    #[error("invalid publish uri {uri:?}: {reason}")]
    InvalidUri {
        /// The URI as configured.
        uri: String,
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

impl From<http::BuildError> for Error {
    fn from(e: http::BuildError) -> Error {
        match e {
            http::BuildError::Uri { uri, reason } => Error::InvalidUri { uri, reason },
            http::BuildError::Client(e) => Error::Client(e.to_string()),
        }
    }
}

/// Per-registry publishing state: the queue of measurements kept after failed POSTs, the
/// HTTP client, and whether a loop is running. Not on the recording path.
#[derive(Default)]
pub(crate) struct PublishState {
    pub(crate) pending: Mutex<Pending>,
    pub(crate) sender: OnceLock<Result<http::HttpSender, String>>,
    pub(crate) running: AtomicBool,
}

impl std::fmt::Debug for PublishState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishState").finish_non_exhaustive()
    }
}

/// Measurements whose batch failed every attempt, oldest first.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) queue: VecDeque<Measurement>,
    pub(crate) last_failure: Option<http::FailureKind>,
}
