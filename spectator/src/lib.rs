//! # spectator
//!
//! The Rust member of the Netflix Spectator family: meters that record with a few atomic
//! operations, and a publisher that reports them to the Atlas aggregator.

#![warn(missing_docs)]

// Lets the macros' `::spectator::...` paths resolve inside this crate too.
extern crate self as spectator;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
pub mod clock;
pub mod config;
pub mod global;
pub mod id;
mod log;
pub mod measurement;
pub mod meter;
pub mod publish;
mod registry;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError};
pub use global::{global, stop_global};
pub use id::Id;
pub use measurement::{Measurement, Op};
pub use meter::{
    Counter, DistributionSummary, Gauge, MaxGauge, PercentileDistributionSummary, PercentileTimer,
    Stopwatch, Timer,
};
pub use publish::{PublishReport, Publisher};
pub use registry::{Registry, RegistryBuilder};

/// Times every call of a function (see the attribute's own docs below for all the rules).
///
/// ```
/// use spectator::{global, timed};
///
/// // Named `method.timed`, tagged `module` and `method`.
/// #[timed]
/// fn handle() {}
///
/// // A PercentileTimer; tagged `result=success|failure|cancelled` because it returns a Result.
/// #[timed("server.requestLatency", endpoint = "users", percentiles)]
/// fn users(id: &str) -> Result<u32, std::num::ParseIntError> {
///     let id: u32 = id.parse()?;
///     Ok(id)
/// }
///
/// handle();
/// users("42").unwrap();
/// users("x").unwrap_err();
/// let latency = |result| {
///     global().percentile_timer(
///         "server.requestLatency",
///         &[("endpoint", "users"), ("result", result)],
///     )
/// };
/// assert_eq!(latency("success").count(), 1);
/// assert_eq!(latency("failure").count(), 1);
/// ```
pub use spectator_macros::timed;

/// Counts every call of a function (see the attribute's own docs below for all the rules).
///
/// ```
/// use spectator::{counted, global};
///
/// #[counted("server.numRequests", statusCode = "200")]
/// fn ok() {}
///
/// struct Service;
///
/// impl Service {
///     #[counted] // named `method.counted`, tagged `module` and `method`
///     async fn poll(&self) -> u32 {
///         1
///     }
/// }
///
/// ok();
/// ok();
/// let requests = global().counter("server.numRequests", &[("statusCode", "200")]);
/// assert_eq!(requests.count(), 2.0);
/// # drop(Service.poll());
/// ```
pub use spectator_macros::counted;

/// Declares meters as statics that dereference to their handles (see the macro's own docs
/// below for all the rules).
///
/// ```
/// use std::time::Duration;
///
/// spectator::metrics! {
///     /// Requests served.
///     pub static REQUESTS: Counter = "server.numRequests", statusCode = "200";
///     static LATENCY: Timer = "server.requestLatency", "http.method" = "GET";
///     static QUEUE: Gauge = "server.queueSize";
/// }
///
/// REQUESTS.increment();
/// LATENCY.record(Duration::from_millis(12));
/// QUEUE.set(3.0);
/// assert_eq!(LATENCY.count(), 1);
/// assert_eq!(QUEUE.get(), 3.0);
/// ```
pub use spectator_macros::metrics;

/// Times a block and evaluates to its value (see the macro's own docs below for all the
/// rules).
///
/// ```
/// async fn run_query() -> Vec<&'static str> {
///     vec!["alice", "bob"]
/// }
///
/// async fn users() -> usize {
///     let rows = spectator::time!("db.query", table = "users", { run_query().await });
///     rows.len()
/// }
///
/// let sum = spectator::time!("math.sum", { (1..=10).sum::<u32>() });
/// assert_eq!(sum, 55);
/// assert_eq!(spectator::global().timer("math.sum", &[]).count(), 1);
/// # drop(users());
/// ```
pub use spectator_macros::time;

#[cfg(feature = "receiver")]
pub mod receiver;
#[cfg(feature = "testing")]
pub mod testing;
