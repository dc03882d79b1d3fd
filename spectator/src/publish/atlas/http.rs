//! One POST to the aggregator, its retries, and what its response means.
//!
//! Logs go to the tracing target `spectator::http`.

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use tokio::time::Instant;

/// How many POSTs one batch gets in all (the first one plus two retries).
pub(crate) const ATTEMPTS: u32 = 3;

/// Pause before the first retry; each later retry waits four times longer.
const BACKOFF: Duration = Duration::from_millis(100);

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// 200 (or any other 2xx but 202): everything accepted.
    Accepted,
    /// 202: `errors` measurements were rejected, the rest accepted.
    Partial { errors: usize },
    /// 400: the aggregator rejected the whole batch.
    Rejected,
    /// Another status that retrying will not fix (401, 404, 413, ...): the batch is lost.
    HttpError { status: u16 },
    /// 429, 5xx, connection errors and timeouts, still failing after every attempt (or out of
    /// time for the step): the batch should be kept for the next publish.
    Failed { kind: FailureKind },
}

/// Why the last attempt of a batch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// The aggregator answered 429 or 5xx.
    Status(u16),
    /// No answer: connection refused or reset, timeout, ...
    Transport,
}

/// The reqwest client plus the endpoint.
#[derive(Debug, Clone)]
pub(crate) struct HttpSender {
    client: reqwest::Client,
    uri: reqwest::Url,
}

/// The body of a 202 or 400 answer.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCount", default)]
    error_count: Option<usize>,
    #[serde(default)]
    message: Vec<String>,
}

/// Why an [`HttpSender`] could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("invalid publish uri {uri:?}: {reason}")]
    Uri { uri: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl HttpSender {
    /// A client for `uri` whose connect and request timeouts are both `timeout`.
    pub(crate) fn new(uri: &str, timeout: Duration) -> Result<HttpSender, BuildError> {
        let uri = parse_uri(uri).map_err(|reason| BuildError::Uri {
            uri: uri.to_string(),
            reason,
        })?;
        let timeout = if timeout.is_zero() {
            Duration::from_secs(1)
        } else {
            timeout
        };
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("spectator-rs/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpSender { client, uri })
    }

    /// One POST of an already gzipped body holding `count` measurements, retried as the
    /// output's docs say, giving up early rather than running past `deadline`.
    pub(crate) async fn send(
        &self,
        body: &[u8],
        count: usize,
        deadline: Instant,
        failed_attempts: &mut usize,
    ) -> Delivery {
        let mut backoff = BACKOFF;
        let mut attempt = 1;
        loop {
            let kind = match self.post_once(body, count).await {
                Ok(outcome) => return outcome,
                Err(kind) => kind,
            };
            *failed_attempts += 1;
            if attempt >= ATTEMPTS || Instant::now() + backoff >= deadline {
                tracing::warn!(
                    target: "spectator::http",
                    uri = %self.uri,
                    attempts = attempt,
                    measurements = count,
                    "publish failed ({kind:?}); keeping the batch for the next publish"
                );
                return Delivery::Failed { kind };
            }
            tracing::debug!(
                target: "spectator::http",
                attempt,
                "publish attempt failed ({kind:?}); retrying in {backoff:?}"
            );
            tokio::time::sleep(backoff).await;
            backoff *= 4;
            attempt += 1;
        }
    }

    async fn post_once(&self, body: &[u8], count: usize) -> Result<Delivery, FailureKind> {
        let response = self
            .client
            .post(self.uri.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(CONTENT_ENCODING, HeaderValue::from_static("gzip"))
            .header(ACCEPT_ENCODING, HeaderValue::from_static("gzip"))
            .body(body.to_vec())
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(target: "spectator::http", uri = %self.uri, "POST failed: {e}");
                return Err(FailureKind::Transport);
            }
        };
        let status = response.status().as_u16();
        match status {
            202 | 400 => {
                // A body we cannot read still tells us something went wrong.
                let text = response.text().await.unwrap_or_default();
                let parsed: Option<ErrorBody> = serde_json::from_str(&text).ok();
                if status == 202 {
                    let errors = parsed
                        .as_ref()
                        .and_then(|b| b.error_count)
                        .unwrap_or(0)
                        .min(count);
                    if errors > 0 {
                        tracing::warn!(
                            target: "spectator::http",
                            errors,
                            measurements = count,
                            messages = ?parsed.map(|b| b.message).unwrap_or_default(),
                            "aggregator rejected part of a batch"
                        );
                    }
                    Ok(Delivery::Partial { errors })
                } else {
                    tracing::error!(
                        target: "spectator::http",
                        measurements = count,
                        messages = ?parsed.map(|b| b.message).unwrap_or_else(|| vec![text]),
                        "aggregator rejected a whole batch (400)"
                    );
                    Ok(Delivery::Rejected)
                }
            }
            200..=299 => Ok(Delivery::Accepted),
            429 | 500..=599 => {
                tracing::debug!(target: "spectator::http", status, "aggregator busy or failing");
                Err(FailureKind::Status(status))
            }
            _ => {
                tracing::error!(
                    target: "spectator::http",
                    status,
                    uri = %self.uri,
                    measurements = count,
                    "aggregator refused the batch; dropping it"
                );
                Ok(Delivery::HttpError { status })
            }
        }
    }
}

/// Checks that `uri` is an absolute `http` or `https` URL.
/// Checks that `uri` is an absolute `http` or `https` URL with a host.
pub(crate) fn parse_uri(uri: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(uri.trim()).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("scheme {other:?} is not http or https")),
    }
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(url),
        _ => Err("no host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_checks() {
        assert!(parse_uri("http://localhost:7101/api/v4/update").is_ok());
        assert!(parse_uri("https://atlas.example.com/api/v4/update").is_ok());
        assert!(parse_uri("ftp://x/y").is_err());
        assert!(parse_uri("not a uri").is_err());
        assert!(parse_uri("").is_err());
    }

    #[tokio::test]
    async fn connection_refused_is_retried_then_failed() {
        // Bind and drop to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = HttpSender::new(
            &format!("http://127.0.0.1:{port}/api/v4/update"),
            Duration::from_millis(200),
        )
        .unwrap();
        let mut failed = 0;
        let out = s
            .send(
                b"x",
                1,
                Instant::now() + Duration::from_secs(5),
                &mut failed,
            )
            .await;
        assert_eq!(
            out,
            Delivery::Failed {
                kind: FailureKind::Transport
            }
        );
        assert_eq!(failed, 3);
    }
}
