//! Sending a poll's measurements: batches, the bounded queue of measurements kept after
//! failed POSTs, and the per-publish report.

use std::sync::PoisonError;
use std::time::Duration;

use tokio::time::Instant;

use super::encode::{encode_batch, gzip};
use super::http::{FailureKind, HttpSender, Outcome};
use super::{Error, PublishReport, PublishState};
use crate::config::Config;
use crate::measurement::Measurement;

/// Most measurements kept for the next publish, in batches.
pub(crate) const PENDING_BATCHES: usize = 10;

/// The part of publishing that needs only the state, the config and a sender.
pub(crate) struct PublishCore<'a> {
    pub(crate) state: &'a PublishState,
    pub(crate) config: &'a Config,
}

impl PublishCore<'_> {
    /// The shared HTTP sender for this registry, built on first use.
    pub(crate) fn sender(&self) -> Result<&HttpSender, Error> {
        let uri = self.config.uri.as_deref().ok_or(Error::NoUri)?;
        let built = self.state.sender.get_or_init(|| {
            HttpSender::new(uri, self.config.timeout).map_err(|e| Error::from(e).to_string())
        });
        match built {
            Ok(s) => Ok(s),
            // Building again reproduces the first error (with its type).
            Err(first) => Err(HttpSender::new(uri, self.config.timeout)
                .err()
                .map(Error::from)
                .unwrap_or_else(|| Error::Client(first.clone()))),
        }
    }

    /// Sends what was kept from earlier publishes, then `new`, in batches of `batch_size`.
    pub(crate) async fn send(&self, sender: &HttpSender, new: Vec<Measurement>) -> PublishReport {
        let mut report = PublishReport::default();
        let batch_size = self.config.batch_size.max(1);
        let deadline = Instant::now() + self.config.frequency.max(Duration::from_millis(1));

        let mut all: Vec<Measurement> = {
            let mut p = self
                .state
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            p.queue.drain(..).collect()
        };
        all.extend(new.into_iter().filter(|m| m.value.is_finite()));

        let mut kept: Vec<Measurement> = Vec::new();
        let mut failure: Option<FailureKind> = None;
        let mut json = Vec::new();
        for chunk in all.chunks(batch_size) {
            if failure.is_some() || Instant::now() >= deadline {
                kept.extend_from_slice(chunk);
                continue;
            }
            report.batches += 1;
            json.clear();
            encode_batch(&self.config.common_tags, chunk, &mut json);
            let body = gzip(&json);
            let n = chunk.len();
            match sender.send(&body, n, deadline, &mut report.errors).await {
                Outcome::Accepted => report.sent += n,
                Outcome::Partial { errors } => {
                    report.dropped_validation += errors;
                    report.sent += n - errors;
                }
                Outcome::Rejected => report.dropped_validation += n,
                Outcome::HttpError { .. } => report.dropped_http += n,
                Outcome::Failed { kind } => {
                    failure = Some(kind);
                    kept.extend_from_slice(chunk);
                }
            }
        }

        {
            let mut p = self
                .state
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
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
        }
        report.dropped = report.dropped_validation + report.dropped_http + report.dropped_other;
        report
    }
}

/// Counts the non-finite values of `ms` (they are never sent).
pub(crate) fn count_non_finite(ms: &[Measurement]) -> usize {
    ms.iter().filter(|m| !m.value.is_finite()).count()
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::id::Id;
    use crate::testing::aggregator::{Aggregator, Reply};

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
        let state = PublishState::default();
        let cfg = config(&agg, 4);
        let core = PublishCore {
            state: &state,
            config: &cfg,
        };
        let sender = core.sender().unwrap().clone();
        agg.script(Reply::Validate, 1);
        agg.script(Reply::Status(503), 1);
        agg.script(Reply::Reset, 1);
        let mut input = ms(10, "retry.me");
        input.push(Measurement::new(Id::new("nan", &[]), f64::NAN));
        let r = core.send(&sender, input).await;
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
        let state = PublishState::default();
        let cfg = config(&agg, 5);
        let core = PublishCore {
            state: &state,
            config: &cfg,
        };
        let sender = core.sender().unwrap().clone();
        agg.script(Reply::Partial(2), 1);
        agg.script(Reply::Status(400), 1);
        agg.script(Reply::Status(404), 1);
        let r = core.send(&sender, ms(15, "p")).await;
        assert_eq!(r.sent, 3);
        assert_eq!(r.dropped_validation, 7);
        assert_eq!(r.dropped_http, 5);
        assert_eq!(r.dropped, 12);
        assert_eq!((r.errors, r.pending), (0, 0));
    }

    #[tokio::test]
    async fn outage_keeps_pending_bounded_then_recovers() {
        let agg = Aggregator::start().unwrap();
        let state = PublishState::default();
        let cfg = config(&agg, 2);
        let core = PublishCore {
            state: &state,
            config: &cfg,
        };
        let sender = core.sender().unwrap().clone();
        // Outage: every attempt of the first batch fails; nothing else is tried.
        agg.script(Reply::Status(500), 3);
        let r = core.send(&sender, ms(6, "a")).await;
        assert_eq!(
            (r.sent, r.batches, r.errors, r.pending, r.dropped),
            (0, 1, 3, 6, 0)
        );
        // Still down, and more than the bound (10 batches of 2) is waiting: oldest dropped.
        agg.script(Reply::Status(429), 3);
        let r = core.send(&sender, ms(18, "b")).await;
        assert_eq!(
            (r.sent, r.pending, r.dropped, r.dropped_http),
            (0, 20, 4, 4)
        );
        // Recovery: everything kept goes out, oldest first.
        let r = core.send(&sender, ms(1, "c")).await;
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
        let state = PublishState::default();
        let cfg = config(&agg, 100);
        let core = PublishCore {
            state: &state,
            config: &cfg,
        };
        let sender = core.sender().unwrap().clone();
        agg.script(Reply::Hang(Duration::from_secs(2)), 1);
        let r = core.send(&sender, ms(3, "h")).await;
        assert_eq!((r.sent, r.errors, r.pending), (3, 1, 0));
        assert_eq!(
            state.pending.lock().unwrap().last_failure,
            None,
            "a success leaves no failure behind"
        );
    }
}
