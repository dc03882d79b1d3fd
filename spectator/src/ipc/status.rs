//! The tag values of the IPC conventions and the mappings from HTTP and gRPC statuses.

use std::error::Error as StdError;

/// The `ipc.status` tag: the outcome of a call, in the vocabulary shared by every Netflix IPC
/// library (see the [IPC metrics spec](https://netflix.github.io/atlas-docs/spectator/specs/ipc/)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpcStatus {
    /// The request was processed and answered, as far as the client or server know.
    Success,
    /// A problem with the client's request kept it from being fulfilled.
    BadRequest,
    /// The client or server met an unexpected error processing the request.
    UnexpectedError,
    /// The network connection failed, while being established or while in use.
    ConnectionError,
    /// No server was available to process the request.
    Unavailable,
    /// The request was rejected because the server is above capacity.
    Throttled,
    /// The request did not complete within the configured time.
    Timeout,
    /// The client cancelled the request before it completed.
    Cancelled,
    /// The request was denied for authentication or authorization reasons.
    AccessDenied,
}

impl IpcStatus {
    /// Every status, in declaration order.
    pub const ALL: [IpcStatus; 9] = [
        IpcStatus::Success,
        IpcStatus::BadRequest,
        IpcStatus::UnexpectedError,
        IpcStatus::ConnectionError,
        IpcStatus::Unavailable,
        IpcStatus::Throttled,
        IpcStatus::Timeout,
        IpcStatus::Cancelled,
        IpcStatus::AccessDenied,
    ];

    /// The tag value, e.g. `bad_request`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpcStatus::Success => "success",
            IpcStatus::BadRequest => "bad_request",
            IpcStatus::UnexpectedError => "unexpected_error",
            IpcStatus::ConnectionError => "connection_error",
            IpcStatus::Unavailable => "unavailable",
            IpcStatus::Throttled => "throttled",
            IpcStatus::Timeout => "timeout",
            IpcStatus::Cancelled => "cancelled",
            IpcStatus::AccessDenied => "access_denied",
        }
    }

    /// The `ipc.result` tag value: `success` for [`IpcStatus::Success`], else `failure`.
    pub fn result(self) -> &'static str {
        if self == IpcStatus::Success {
            "success"
        } else {
            "failure"
        }
    }

    /// The status of an HTTP response, as Spectator's `IpcStatus.forHttpStatusStandard`:
    /// 1xx, 2xx, 3xx and 404 are `success`; 401, 402, 403, 407 and 511 `access_denied`; 408
    /// `timeout`; 429 `throttled`; 503 `unavailable`; other 4xx `bad_request`; other 5xx (and
    /// anything below 100) `unexpected_error`.
    ///
    /// (Java's default `forHttpStatus` also counts 503 as `throttled`, an old Netflix
    /// convention; this follows the RFCs, as the standard variant does.)
    ///
    /// ```
    /// use spectator::ipc::IpcStatus;
    /// assert_eq!(IpcStatus::from_http_status(204), IpcStatus::Success);
    /// assert_eq!(IpcStatus::from_http_status(404), IpcStatus::Success);
    /// assert_eq!(IpcStatus::from_http_status(422), IpcStatus::BadRequest);
    /// assert_eq!(IpcStatus::from_http_status(503), IpcStatus::Unavailable);
    /// ```
    pub fn from_http_status(code: u16) -> IpcStatus {
        match code {
            404 => IpcStatus::Success,
            401 | 402 | 403 | 407 | 511 => IpcStatus::AccessDenied,
            408 => IpcStatus::Timeout,
            429 => IpcStatus::Throttled,
            503 => IpcStatus::Unavailable,
            0..=99 => IpcStatus::UnexpectedError,
            100..=399 => IpcStatus::Success,
            400..=499 => IpcStatus::BadRequest,
            _ => IpcStatus::UnexpectedError,
        }
    }

    /// The status of a gRPC status code (the `grpc-status` header or trailer): OK `success`,
    /// CANCELLED `cancelled`, DEADLINE_EXCEEDED `timeout`, UNAVAILABLE `unavailable`,
    /// RESOURCE_EXHAUSTED `throttled`, PERMISSION_DENIED and UNAUTHENTICATED `access_denied`,
    /// INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION and OUT_OF_RANGE
    /// `bad_request`, every other code `unexpected_error`.
    ///
    /// ```
    /// use spectator::ipc::IpcStatus;
    /// assert_eq!(IpcStatus::from_grpc_code(0), IpcStatus::Success);
    /// assert_eq!(IpcStatus::from_grpc_code(4), IpcStatus::Timeout);
    /// assert_eq!(IpcStatus::from_grpc_code(13), IpcStatus::UnexpectedError);
    /// ```
    pub fn from_grpc_code(code: u32) -> IpcStatus {
        match code {
            0 => IpcStatus::Success,
            1 => IpcStatus::Cancelled,
            4 => IpcStatus::Timeout,
            14 => IpcStatus::Unavailable,
            8 => IpcStatus::Throttled,
            7 | 16 => IpcStatus::AccessDenied,
            3 | 5 | 6 | 9 | 11 => IpcStatus::BadRequest,
            _ => IpcStatus::UnexpectedError,
        }
    }

    /// The status of a failed client call, from its error and the errors that caused it
    /// ([`source`](StdError::source) chain): `timeout` when any of them is a timeout
    /// (`std::io::ErrorKind::TimedOut`, `tower::timeout::error::Elapsed`,
    /// `tokio::time::error::Elapsed`, a `reqwest` or `hyper` timeout), else
    /// `connection_error`.
    ///
    /// ```
    /// use spectator::ipc::IpcStatus;
    /// let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
    /// assert_eq!(IpcStatus::from_client_error(&timed_out), IpcStatus::Timeout);
    /// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    /// assert_eq!(IpcStatus::from_client_error(&refused), IpcStatus::ConnectionError);
    /// ```
    pub fn from_client_error(error: &(dyn StdError + 'static)) -> IpcStatus {
        let mut next = Some(error);
        // Bounded, in case of a cyclic chain.
        for _ in 0..32 {
            let Some(e) = next else { break };
            if is_timeout(e) {
                return IpcStatus::Timeout;
            }
            next = e.source();
        }
        IpcStatus::ConnectionError
    }
}

fn is_timeout(e: &(dyn StdError + 'static)) -> bool {
    if let Some(io) = e.downcast_ref::<std::io::Error>() {
        return io.kind() == std::io::ErrorKind::TimedOut;
    }
    if let Some(r) = e.downcast_ref::<reqwest::Error>() {
        return r.is_timeout();
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        return h.is_timeout();
    }
    e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>()
}

/// Which attempt of a call this is, for the client's `ipc.attempt` and `ipc.attempt.final`
/// tags. A client that retries puts one in the request's extensions; without one a call is
/// the `initial` and `final` attempt.
///
/// ```
/// use spectator::ipc::IpcAttempt;
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(IpcAttempt::new(2, true)); // the first retry, the last one
/// assert_eq!(IpcAttempt::new(2, true).attempt(), "second");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpcAttempt {
    number: u32,
    is_final: bool,
}

impl Default for IpcAttempt {
    fn default() -> Self {
        IpcAttempt::new(1, true)
    }
}

impl IpcAttempt {
    /// Attempt `number` (1 for the first try, 2 for the first retry, ...); `is_final` when no
    /// retry will follow it.
    pub fn new(number: u32, is_final: bool) -> IpcAttempt {
        IpcAttempt { number, is_final }
    }

    /// The attempt number given to [`IpcAttempt::new`].
    pub fn number(self) -> u32 {
        self.number
    }

    /// Whether this is the last attempt.
    pub fn is_final(self) -> bool {
        self.is_final
    }

    /// The `ipc.attempt` tag value: `initial`, `second`, `third_up`, or `unknown` for 0.
    pub fn attempt(self) -> &'static str {
        ATTEMPTS[usize::from(self.index())]
    }

    pub(crate) fn index(self) -> u8 {
        match self.number {
            0 => 3,
            1 => 0,
            2 => 1,
            _ => 2,
        }
    }
}

pub(crate) const ATTEMPTS: [&str; 4] = ["initial", "second", "third_up", "unknown"];

/// The `ipc.protocol` tag values.
pub(crate) const PROTOCOLS: [&str; 4] = ["http_1", "http_2", "grpc", "http_3"];
pub(crate) const PROTO_HTTP1: u8 = 0;
pub(crate) const PROTO_HTTP2: u8 = 1;
pub(crate) const PROTO_GRPC: u8 = 2;
pub(crate) const PROTO_HTTP3: u8 = 3;

/// The `http.method` tag values; index 0 stands for any non-standard method.
pub(crate) const METHODS: [&str; 10] = [
    "other", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

pub(crate) fn method_index(m: &http::Method) -> u8 {
    match *m {
        http::Method::GET => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::HEAD => 5,
        http::Method::OPTIONS => 6,
        http::Method::PATCH => 7,
        http::Method::TRACE => 8,
        http::Method::CONNECT => 9,
        _ => 0,
    }
}

pub(crate) fn status_index(s: IpcStatus) -> u8 {
    s as u8
}

/// The protocol of a request: `grpc` when its content type is `application/grpc*`, else the
/// HTTP version.
#[inline]
pub(crate) fn protocol_of<B>(req: &http::Request<B>) -> u8 {
    if is_grpc(req.headers()) {
        return PROTO_GRPC;
    }
    match req.version() {
        http::Version::HTTP_2 => PROTO_HTTP2,
        http::Version::HTTP_3 => PROTO_HTTP3,
        _ => PROTO_HTTP1,
    }
}

#[inline]
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The `grpc-status` in a header map: `Some(code)`, or `None` when absent. A value that is
/// not a number counts as UNKNOWN (2).
pub(crate) fn grpc_status(headers: &http::HeaderMap) -> Option<u32> {
    let v = headers.get("grpc-status")?;
    Some(
        std::str::from_utf8(v.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_mapping_follows_ipc_status() {
        let cases = [
            (100, IpcStatus::Success),
            (200, IpcStatus::Success),
            (201, IpcStatus::Success),
            (302, IpcStatus::Success),
            (400, IpcStatus::BadRequest),
            (401, IpcStatus::AccessDenied),
            (402, IpcStatus::AccessDenied),
            (403, IpcStatus::AccessDenied),
            (404, IpcStatus::Success),
            (405, IpcStatus::BadRequest),
            (407, IpcStatus::AccessDenied),
            (408, IpcStatus::Timeout),
            (409, IpcStatus::BadRequest),
            (413, IpcStatus::BadRequest),
            (422, IpcStatus::BadRequest),
            (429, IpcStatus::Throttled),
            (500, IpcStatus::UnexpectedError),
            (502, IpcStatus::UnexpectedError),
            (503, IpcStatus::Unavailable),
            (504, IpcStatus::UnexpectedError),
            (511, IpcStatus::AccessDenied),
            (99, IpcStatus::UnexpectedError),
            (999, IpcStatus::UnexpectedError),
        ];
        for (code, want) in cases {
            assert_eq!(IpcStatus::from_http_status(code), want, "{code}");
        }
    }

    #[test]
    fn grpc_mapping() {
        let want = [
            (0, "success"),
            (1, "cancelled"),
            (2, "unexpected_error"),
            (3, "bad_request"),
            (4, "timeout"),
            (5, "bad_request"),
            (6, "bad_request"),
            (7, "access_denied"),
            (8, "throttled"),
            (9, "bad_request"),
            (10, "unexpected_error"),
            (11, "bad_request"),
            (12, "unexpected_error"),
            (13, "unexpected_error"),
            (14, "unavailable"),
            (15, "unexpected_error"),
            (16, "access_denied"),
            (17, "unexpected_error"),
        ];
        for (code, s) in want {
            assert_eq!(IpcStatus::from_grpc_code(code).as_str(), s, "{code}");
        }
    }

    #[test]
    fn result_follows_status() {
        for s in IpcStatus::ALL {
            let want = if s == IpcStatus::Success {
                "success"
            } else {
                "failure"
            };
            assert_eq!(s.result(), want);
        }
    }

    #[test]
    fn client_errors_by_kind() {
        #[derive(Debug)]
        struct Wrapper(Box<dyn StdError + Send + Sync>);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapped")
            }
        }
        impl StdError for Wrapper {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&*self.0)
            }
        }
        let elapsed = Wrapper(Box::new(tower::timeout::error::Elapsed::new()));
        assert_eq!(IpcStatus::from_client_error(&elapsed), IpcStatus::Timeout);
        let io = Wrapper(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert_eq!(
            IpcStatus::from_client_error(&io),
            IpcStatus::ConnectionError
        );
    }

    #[test]
    fn grpc_status_header() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert_eq!(grpc_status(&h), Some(14));
        h.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&h), Some(2));
    }

    #[test]
    fn attempts() {
        assert_eq!(IpcAttempt::default().attempt(), "initial");
        assert_eq!(IpcAttempt::new(3, false).attempt(), "third_up");
        assert_eq!(IpcAttempt::new(9, false).attempt(), "third_up");
        assert_eq!(IpcAttempt::new(0, false).attempt(), "unknown");
    }
}
