//! The Atlas aggregator output: the payload encoding (`encode`), one POST and its retries
//! (`http`), and here the batching and the bounded queue of measurements kept after failed
//! POSTs.
//!
//! # Delivery
//!
//! Each POST holds at most `batch_size` measurements. 429, 5xx, connection errors and timeouts
//! are retried with backoff (100 ms, then 400 ms; 3 attempts in all), never past the end of the
//! step. A batch that still fails is kept and sent first at the next publish; at most
//! 10 × `batch_size` measurements are kept, beyond that the oldest are dropped and counted.
//! 202 answers count their `errorCount` as dropped, 400 drops the whole batch, any other
//! non-2xx status (401, 404, 413, ...) drops the batch too (retrying would not help).
//! Non-finite values cannot be sent (JSON has no NaN) and are left out here.

pub mod encode;
pub(crate) mod http;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use self::encode::{encode_batch, gzip};
use self::http::{Delivery, FailureKind, HttpSender};
use super::{Connection, PublishError, PublishReport, StoredError};
use crate::config::Config;
use crate::measurement::Measurement;
use crate::sync::lock;

/// Most measurements kept for the next publish, in batches.
pub(crate) const PENDING_BATCHES: usize = 10;

/// Measurements whose batch failed every attempt, oldest first.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) queue: VecDeque<Measurement>,
    pub(crate) last_failure: Option<FailureKind>,
}

/// Publishing to the Atlas aggregator at one URI.
pub(crate) struct AtlasOutput {
    uri: String,
    pub(crate) pending: Mutex<Pending>,
    /// The HTTP client and the process it was built in (a forked child builds its own: the
    /// parent's pooled connections are served by a runtime the child does not have).
    sender: Mutex<Option<(u32, Result<HttpSender, StoredError>)>>,
}

impl AtlasOutput {
    /// An output for `uri`, checked to be an absolute http(s) URL.
    pub(crate) fn new(uri: &str) -> Result<AtlasOutput, StoredError> {
        http::parse_uri(uri).map_err(|reason| StoredError::InvalidUri {
            uri: uri.to_owned(),
            reason,
        })?;
        Ok(AtlasOutput {
            uri: uri.to_owned(),
            pending: Mutex::default(),
            sender: Mutex::default(),
        })
    }

    /// Whether a client can be built in this process.
    pub(crate) fn check(&self, config: &Config) -> Result<(), PublishError> {
        self.sender(config, Connection::Shared)
            .map(drop)
            .map_err(PublishError::from)
    }

    /// The HTTP client: the one built in this process (on first use here), or a new one.
    fn sender(&self, config: &Config, connection: Connection) -> Result<HttpSender, StoredError> {
        let build = || {
            HttpSender::new(&self.uri, config.timeout).map_err(|e| match e {
                http::BuildError::Uri { uri, reason } => StoredError::InvalidUri { uri, reason },
                http::BuildError::Client(e) => StoredError::Client(e.to_string()),
            })
        };
        if connection == Connection::Fresh {
            return build();
        }
        let me = std::process::id();
        let mut slot = lock(&self.sender);
        match &*slot {
            Some((pid, built)) if *pid == me => built.clone(),
            _ => {
                let built = build();
                *slot = Some((me, built.clone()));
                built
            }
        }
    }

    /// Sends what was kept from earlier publishes, then `new`, in batches of `batch_size`.
    pub(crate) async fn send(
        &self,
        new: Vec<Measurement>,
        config: &Config,
        connection: Connection,
    ) -> PublishReport {
        match self.sender(config, connection) {
            Ok(sender) => self.send_with(&sender, new, config).await,
            Err(e) => {
                tracing::error!(target: "spectator::registry", "cannot publish: {}", PublishError::from(e));
                PublishReport::default()
            }
        }
    }

    async fn send_with(
        &self,
        sender: &HttpSender,
        new: Vec<Measurement>,
        config: &Config,
    ) -> PublishReport {
        let mut report = PublishReport::default();
        let batch_size = config.batch_size.max(1);
        let deadline = Instant::now() + config.frequency.max(Duration::from_millis(1));

        let mut all: Vec<Measurement> = lock(&self.pending).queue.drain(..).collect();
        all.extend(new.into_iter().filter(|m| m.value.is_finite()));

        let mut kept: Vec<Measurement> = Vec::new();
        let mut failure: Option<FailureKind> = None;
        let bodies = bodies(&config.common_tags, &all, batch_size);
        for (chunk, body) in all.chunks(batch_size).zip(&bodies) {
            if failure.is_some() || Instant::now() >= deadline {
                kept.extend_from_slice(chunk);
                continue;
            }
            report.batches += 1;
            let n = chunk.len();
            match sender.send(body, n, deadline, &mut report.errors).await {
                Delivery::Accepted => report.sent += n,
                Delivery::Partial { errors } => {
                    report.dropped_validation += errors;
                    report.sent += n - errors;
                }
                Delivery::Rejected => report.dropped_validation += n,
                Delivery::HttpError { .. } => report.dropped_http += n,
                Delivery::Failed { kind } => {
                    failure = Some(kind);
                    kept.extend_from_slice(chunk);
                }
            }
        }

        let mut p = lock(&self.pending);
        // What failed now is older than anything a concurrent publish may have queued.
        for m in kept.into_iter().rev() {
            p.queue.push_front(m);
        }
        if failure.is_some() {
            p.last_failure = failure;
        }
        let bound = batch_size.saturating_mul(PENDING_BATCHES);
        let excess = p.queue.len().saturating_sub(bound);
        if excess > 0 {
            p.queue.drain(..excess);
            match p.last_failure {
                Some(FailureKind::Status(_)) => report.dropped_http += excess,
                _ => report.dropped_other += excess,
            }
            tracing::warn!(
                target: "spectator::registry",
                dropped = excess,
                bound,
                "pending queue full; dropped the oldest measurements"
            );
        }
        report.pending = p.queue.len();
        if p.queue.is_empty() {
            p.last_failure = None;
        }
        report.total()
    }
}

/// Most threads that encode and compress one publish's batches.
const MAX_ENCODERS: usize = 4;

/// The gzipped POST body of each batch of `all` (batches of `batch_size`), in order.
///
/// Encoding and compressing is most of a publish's CPU time, and batches are independent: with
/// more than one batch and more than one core, they are shared out over up to
/// [`MAX_ENCODERS`] threads that live for this call only. Should a thread not start, this
/// thread encodes its share.
fn bodies(common: &[(String, String)], all: &[Measurement], batch_size: usize) -> Vec<Vec<u8>> {
    let chunks: Vec<&[Measurement]> = all.chunks(batch_size).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(MAX_ENCODERS)
        .min(chunks.len());
    // Worker `w` takes batches w, w + workers, ...: the batches are alike in size.
    let share = |w: usize| -> Vec<(usize, Vec<u8>)> {
        let mut json = Vec::new();
        (w..chunks.len())
            .step_by(workers.max(1))
            .map(|i| {
                json.clear();
                encode_batch(common, chunks[i], &mut json);
                (i, gzip(&json))
            })
            .collect()
    };
    if workers <= 1 {
        return share(0).into_iter().map(|(_, body)| body).collect();
    }
    let mut out: Vec<Vec<u8>> = vec![Vec::new(); chunks.len()];
    std::thread::scope(|scope| {
        let share = &share;
        let spawned: Vec<_> = (1..workers)
            .map(|w| {
                let handle = std::thread::Builder::new()
                    .name("spectator-encode".into())
                    .spawn_scoped(scope, move || share(w));
                (w, handle)
            })
            .collect();
        let mut done = share(0);
        for (w, handle) in spawned {
            // Encoding does not panic; were a worker to fail, its share is encoded here.
            match handle.map(|h| h.join()) {
                Ok(Ok(part)) => done.extend(part),
                _ => done.extend(share(w)),
            }
        }
        for (i, body) in done {
            out[i] = body;
        }
    });
    out
}

#[cfg(all(test, feature = "receiver"))]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::receiver::{Aggregator, Reply};

    fn ms(n: usize, prefix: &str) -> Vec<Measurement> {
        (0..n)
            .map(|i| {
                Measurement::new(
                    Id::new(prefix, &[("i", &i.to_string()), ("statistic", "count")]),
                    1.0,
                )
            })
            .collect()
    }

    fn config(agg: &Aggregator, batch_size: usize) -> Config {
        Config {
            uri: Some(agg.uri()),
            batch_size,
            timeout: Duration::from_millis(300),
            frequency: Duration::from_secs(10),
            common_tags: vec![("nf.app".into(), "test".into())],
            ..Config::default()
        }
    }

    #[tokio::test]
    async fn batches_headers_and_retries() {
        let agg = Aggregator::start().unwrap();
        let cfg = config(&agg, 4);
        let out = AtlasOutput::new(&agg.uri()).unwrap();
        let sender = out.sender(&cfg, Connection::Shared).unwrap();
        agg.script(Reply::Validate, 1);
        agg.script(Reply::Status(503), 1);
        agg.script(Reply::Reset, 1);
        let mut input = ms(10, "retry.me");
        input.push(Measurement::new(Id::new("nan", &[]), f64::NAN));
        let r = out.send_with(&sender, input, &cfg).await;
        assert_eq!(
            (r.sent, r.dropped, r.batches, r.errors, r.pending),
            (10, 0, 3, 2, 0)
        );
        let reqs = agg.requests();
        assert_eq!(reqs.len(), 5);
        for q in &reqs {
            assert_eq!(q.method, "POST");
            assert_eq!(q.path, "/api/v4/update");
            assert_eq!(q.header("content-type"), Some("application/json"));
            assert_eq!(q.header("content-encoding"), Some("gzip"));
            assert_eq!(q.header("accept-encoding"), Some("gzip"));
            assert!(q.measurement_count() <= 4);
        }
        let accepted = agg.accepted();
        assert_eq!(accepted.len(), 10);
        assert!(accepted.iter().all(|m| m.tags["nf.app"] == "test"));
    }

    #[tokio::test]
    async fn partial_and_rejected() {
        let agg = Aggregator::start().unwrap();
        let cfg = config(&agg, 5);
        let out = AtlasOutput::new(&agg.uri()).unwrap();
        let sender = out.sender(&cfg, Connection::Shared).unwrap();
        agg.script(Reply::Partial(2), 1);
        agg.script(Reply::Status(400), 1);
        agg.script(Reply::Status(404), 1);
        let r = out.send_with(&sender, ms(15, "p"), &cfg).await;
        assert_eq!(r.sent, 3);
        assert_eq!(r.dropped_validation, 7);
        assert_eq!(r.dropped_http, 5);
        assert_eq!(r.dropped, 12);
        assert_eq!((r.errors, r.pending), (0, 0));
    }

    #[tokio::test]
    async fn outage_keeps_pending_bounded_then_recovers() {
        let agg = Aggregator::start().unwrap();
        let cfg = config(&agg, 2);
        let out = AtlasOutput::new(&agg.uri()).unwrap();
        let sender = out.sender(&cfg, Connection::Shared).unwrap();
        // Outage: every attempt of the first batch fails; nothing else is tried.
        agg.script(Reply::Status(500), 3);
        let r = out.send_with(&sender, ms(6, "a"), &cfg).await;
        assert_eq!(
            (r.sent, r.batches, r.errors, r.pending, r.dropped),
            (0, 1, 3, 6, 0)
        );
        // Still down, and more than the bound (10 batches of 2) is waiting: oldest dropped.
        agg.script(Reply::Status(429), 3);
        let r = out.send_with(&sender, ms(18, "b"), &cfg).await;
        assert_eq!(
            (r.sent, r.pending, r.dropped, r.dropped_http),
            (0, 20, 4, 4)
        );
        // Recovery: everything kept goes out, oldest first.
        let r = out.send_with(&sender, ms(1, "c"), &cfg).await;
        assert_eq!((r.sent, r.pending, r.dropped, r.batches), (21, 0, 0, 11));
        let names: Vec<String> = agg
            .accepted()
            .iter()
            .map(|m| format!("{}{}", m.name(), m.tags["i"]))
            .collect();
        assert_eq!(names.first().map(String::as_str), Some("a4"));
        assert_eq!(names.last().map(String::as_str), Some("c0"));
        assert_eq!(names.len(), 21);
    }

    #[tokio::test]
    async fn hang_times_out_and_is_retried() {
        let agg = Aggregator::start().unwrap();
        let cfg = config(&agg, 100);
        let out = AtlasOutput::new(&agg.uri()).unwrap();
        let sender = out.sender(&cfg, Connection::Shared).unwrap();
        agg.script(Reply::Hang(Duration::from_secs(2)), 1);
        let r = out.send_with(&sender, ms(3, "h"), &cfg).await;
        assert_eq!((r.sent, r.errors, r.pending), (3, 1, 0));
        assert_eq!(
            out.pending.lock().unwrap().last_failure,
            None,
            "a success leaves no failure behind"
        );
    }
}
