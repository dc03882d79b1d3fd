//! # spectator
//!
//! The Rust member of the Netflix Spectator family: meters that record with a few atomic
//! operations, and a publisher that reports them each step either to the Atlas aggregator, in
//! the wire format of the Java (`spectator-reg-stateless`) and Python clients, or to the
//! [spectatord](https://github.com/Netflix-Skunkworks/spectatord) sidecar that today's
//! Spectator clients write to.
//!
//! # Quick start
//!
//! Instrument functions with the attribute macros, declare long-lived meters with
//! [`metrics!`], and let the process-wide registry ([`global()`]) publish them:
//!
//! ```
//! use spectator::{counted, timed};
//!
//! spectator::metrics! {
//!     /// Orders waiting for the warehouse.
//!     static BACKLOG: Gauge = "shop.backlog";
//! }
//!
//! #[timed("shop.checkout", percentiles)] // a PercentileTimer, tagged result=success|failure
//! fn checkout(items: u32) -> Result<u32, String> {
//!     BACKLOG.set(f64::from(items));
//!     if items == 0 { Err("empty cart".into()) } else { Ok(items * 100) }
//! }
//!
//! #[counted("shop.pageViews", page = "home")]
//! fn home() {}
//!
//! home();
//! checkout(3).unwrap();
//! checkout(0).unwrap_err();
//!
//! let checkouts = spectator::global().percentile_timer("shop.checkout", &[("result", "success")]);
//! assert_eq!(checkouts.count(), 1);
//! # assert_eq!(spectator::global().counter("shop.pageViews", &[("page", "home")]).count(), 1.0);
//! ```
//!
//! With `SPECTATOR_URI` set in the environment, the first use of [`global()`] starts publishing
//! every 5 seconds (`SPECTATOR_FREQUENCY`); call [`stop_global()`] before the program exits to
//! send the last partial step. Without it, meters record and nothing is sent. The repository's
//! `cargo run --example quickstart` shows the same code publishing to a local receiver.
//!
//! # Meters
//!
//! Ask a [`Registry`] for a meter by name and tags; asking again returns a handle to the same
//! meter. Handles are cheap to clone, `Send + Sync`, and never panic on any input.
//!
//! | meter | records | reports each step (tag `statistic`) |
//! |---|---|---|
//! | [`Counter`] | `increment()`, `add(v)` | `count` |
//! | [`Timer`] | `record(Duration)`, `time(\|\| ..)`, `stopwatch()` | `count`, `totalTime` (s), `totalOfSquares`, `max` |
//! | [`DistributionSummary`] | `record(amount)` | `count`, `totalAmount`, `totalOfSquares`, `max` |
//! | [`Gauge`] | `set(v)`: the current value, reported until 15 min after the last `set` | `gauge` |
//! | [`MaxGauge`] | `set(v)`: the largest value of the step | `max` |
//! | [`PercentileTimer`] | like a timer, 10 ms ..= 60 s; `percentile(p)` | the timer's four and `percentile=T00xx` bucket counts |
//! | [`PercentileDistributionSummary`] | like a summary; `percentile(p)` | the summary's four and `percentile=D00xx` bucket counts |
//! | [`MonotonicCounter`] | `set(v)`: a sampled value that only grows | `count` = its increase |
//! | [`AgeGauge`] | `set_now()`, `set(wall_ms)`: when something last happened; never expires | `gauge` = age in seconds |
//! | [`LongTaskTimer`] | `start()` → [`LongTask`], `stop()` or drop | `activeTasks`, `duration` (s) |
//!
//! The registry also has gauges with their own TTL ([`Registry::gauge_with_ttl`]), meters
//! sampled from an object at each step ([`Registry::polled_gauge`],
//! [`Registry::polled_monotonic_counter`]), percentile meters with another bucket range
//! ([`Registry::percentile_timer_with_range`]) and bounds on a tag's values
//! ([`RegistryBuilder::tag_value_limit`]).
//!
//! ```
//! use spectator::Registry;
//! use std::time::Duration;
//!
//! let registry = Registry::default(); // no URI: records, never publishes
//! registry.counter("server.numRequests", &[("status", "200")]).increment();
//! let latency = registry.timer("server.requestLatency", &[]);
//! latency.record(Duration::from_millis(12));
//! let rows = latency.time(|| vec![1, 2, 3]);
//! registry.gauge("server.queueSize", &[]).set(4.0);
//! registry.max_gauge("server.maxInFlight", &[]).set(9.0);
//! registry.distribution_summary("server.responseSize", &[]).record(512.0);
//! let p = registry.percentile_timer("server.searchLatency", &[]);
//! p.record(Duration::from_millis(30));
//! assert!(p.percentile(50.0) >= Duration::from_millis(25));
//! assert_eq!((latency.count(), rows.len()), (2, 3));
//! ```
//!
//! Every reported value is a delta since the previous publish; the aggregator turns `Add`
//! values into rates per second. Each meter type's docs give its exact rules (ignored inputs,
//! TTLs, the percentile buckets); [`Id`] explains names and tags.
//!
//! # Macros
//!
//! * [`#[timed]`](macro@timed) times every call of a fn (sync or async, methods, generics);
//!   with `percentiles` it records into a [`PercentileTimer`]; with `long_task` each call is a
//!   task of a [`LongTaskTimer`] while it runs.
//! * [`#[counted]`](macro@counted) counts every call.
//! * [`metrics!`] declares meters of any kind, [`MonotonicCounter`], [`AgeGauge`] and
//!   [`LongTaskTimer`] included, as statics that dereference to their handles.
//! * [`time!`] times a block (with `.await`s inside) and evaluates to its value; it takes
//!   `percentiles` and `long_task` too.
//!
//! Fns that are async or return a `Result` get the tag `result` = `success`, `failure` (an
//! `Err` or a panic) or `cancelled` (the future was dropped), except with `long_task`: a long
//! task timer reports calls while they run, before they have an outcome, so its tags are
//! exactly the ones written (as Spectator Java's `LongTaskTimer`). Names and tags are checked
//! against the Atlas rules at compile time. Each call site caches its meter: after the first
//! call, recording costs one atomic load plus the meter's own update, with no lookup and no
//! allocation. The macros record into [`global()`].
//!
//! # Configuration
//!
//! [`global()`] reads [`Config::from_env`] on first use:
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `SPECTATOR_URI` | publish endpoint, e.g. `http://localhost:7101/api/v4/update` | none: record only |
//! | `SPECTATOR_FREQUENCY` | seconds between publishes | 5 |
//! | `SPECTATOR_BATCH_SIZE` | most measurements per POST | 10000 |
//! | `SPECTATOR_TIMEOUT` | seconds for one POST | 1 |
//! | `SPECTATOR_COMMON_TAGS` | `k=v,k2=v2` added to every measurement | none |
//! | `SPECTATOR_DISABLE_AUTO_START_GLOBAL` | do not start publishing; call `global().start()` | unset |
//! | `NETFLIX_APP`, `NETFLIX_CLUSTER`, `EC2_REGION`, ... | the `nf.*` common tags ([`Config::NETFLIX_ENV_TAGS`]) | none |
//!
//! A value that cannot be used is logged (tracing target `spectator::init`) and the registry
//! falls back to recording without publishing. A registry of your own takes the same settings
//! from [`Registry::builder()`] or a [`Config`]:
//!
//! ```
//! use spectator::Registry;
//! use std::time::Duration;
//!
//! let registry = Registry::builder()
//!     .uri("http://localhost:7101/api/v4/update")
//!     .frequency(Duration::from_secs(10))
//!     .common_tags(&[("nf.app", "shop")])
//!     .build();
//! assert_eq!(registry.config().frequency, Duration::from_secs(10));
//! ```
//!
//! # Publishing
//!
//! [`Registry::start`] publishes every `frequency` at wall-clock step boundaries, on the
//! caller's tokio runtime or on a thread of its own, and returns a [`Publisher`] whose
//! [`stop`](Publisher::stop) publishes one last time. [`Registry::publish`] sends one step now.
//!
//! Delivery to Atlas: each POST holds at most `batch_size` measurements; 429, 5xx, connection
//! errors and timeouts are retried with backoff (100 ms, then 400 ms; 3 attempts in all) within
//! the step; a batch that still fails is kept (at most 10 × `batch_size` measurements) and sent
//! first at the next publish; 202 answers count their `errorCount` as dropped, 400 and other
//! refusing statuses drop the batch. Delivery to spectatord: datagrams of whole lines, at most
//! 60 000 bytes; a missing socket, refused send or full buffer drops the step's lines and the
//! next step tries again. Either way the registry counts what happened in its own meters,
//! published with the next step: `spectator.measurements{id=sent}` and
//! `spectator.measurements{id=dropped,error=validation|http-error|other|output}`.
//!
//! ```
//! # #[cfg(feature = "receiver")] {
//! use spectator::receiver::Aggregator;
//! use spectator::Registry;
//! use std::time::Duration;
//!
//! let atlas = Aggregator::start().unwrap(); // a local Atlas-compatible receiver
//! let registry = Registry::builder()
//!     .uri(&atlas.uri())
//!     .frequency(Duration::from_millis(100))
//!     .build();
//! let publisher = registry.start().unwrap();
//! registry.counter("jobs.done", &[]).add(5.0);
//! let report = publisher.stop(); // the final publish: nothing recorded is lost
//! let sent: f64 = atlas.accepted().iter().filter(|m| m.name() == "jobs.done").map(|m| m.value).sum();
//! assert_eq!(sent, 5.0);
//! # let _ = report;
//! # }
//! ```
//!
//! # Testing with `ManualClock`
//!
//! Give a registry a [`ManualClock`] to control the time its timers, gauge TTLs and steps see,
//! and read what a publish would send with [`Registry::measurements`] (which, like a publish,
//! takes the deltas):
//!
//! ```
//! use spectator::{ManualClock, Op, Registry};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new(1_600_000_000_000, 0);
//! let registry = Registry::builder().clock(clock.clone()).build();
//!
//! let timer = registry.timer("db.query", &[("table", "users")]);
//! {
//!     let _sw = timer.stopwatch();
//!     clock.advance(Duration::from_millis(250)); // the "query" takes 250 ms
//! }
//! let gauge = registry.gauge("db.connections", &[]);
//! gauge.set(8.0);
//!
//! let polled = registry.measurements();
//! let value = |stat: &str| {
//!     polled.iter().find(|m| m.id.tag("statistic") == Some(stat)).map(|m| (m.op, m.value))
//! };
//! assert_eq!(value("totalTime"), Some((Op::Add, 0.25)));
//! assert_eq!(value("max"), Some((Op::Max, 0.25)));
//! assert_eq!(value("gauge"), Some((Op::Max, 8.0)));
//!
//! // 15 minutes later the gauge has expired, and the idle timer sends nothing.
//! clock.advance(Duration::from_secs(15 * 60 + 1));
//! assert!(registry.measurements().is_empty());
//! ```
//!
//! To test the whole path, publish to a `spectator::receiver::Aggregator` on 127.0.0.1
//! (feature `receiver`) and check what it accepted, as the publishing example above does.
//!
//! # Outputs
//!
//! Each step the registry is polled once and the measurements go to one output, set with
//! [`RegistryBuilder::output_location`] or `SPECTATOR_OUTPUT_LOCATION` (see
//! [`Config::output_location`] for every form): the Atlas aggregator over HTTP (`http://…`,
//! what `SPECTATOR_URI` sets), spectatord over UDP (`udp`, `udp://host:port`) or a unix
//! datagram socket (`unix`, `unix:///path`), a file or stream of spectatord lines, `memory`
//! ([`Registry::take_written_lines`]) or `none`. Recording is the same for all of them.
//!
//! # Cargo features
//!
//! * `atlas` (default): the Atlas HTTP output (reqwest with rustls, flate2) and
//!   [`wire`], its payload encoding. Without it the crate has no HTTP or TLS stack and writes
//!   to spectatord only.
//! * `receiver`: `spectator::receiver`, a local Atlas-compatible receiver (the decoding and
//!   validation of the Atlas aggregator) with `LiveTable`, a terminal view of what arrives.
//!   `cargo run --example receiver` in the repository runs one.
//! * `testing`: `spectator::testing::aggregator`, the receiver under the name this project's
//!   tests use.
//! * `tower`: `spectator::ipc`, Netflix's IPC call metrics (`ipc.server.call`,
//!   `ipc.client.call`, ...) as `tower::Layer`s for axum, tonic, hyper and reqwest services;
//!   `axum` adds the route template (`MatchedPath`) as the `ipc.endpoint` tag.
//! * `metrics-rs`: `spectator::metrics_rs`, a recorder for the [`metrics`](https://docs.rs/metrics/0.24)
//!   facade (`SpectatorRecorder`, `metrics_rs::install()`), so that libraries instrumented with
//!   `metrics::counter!` & co. report through a registry.
//!
//! # Logs
//!
//! Through [`tracing`](https://docs.rs/tracing), with the targets `spectator::init`
//! (configuration), `spectator::registry` (the publish loop) and `spectator::http` (POSTs).

#![warn(missing_docs)]

// Lets the macros' `::spectator::...` paths resolve inside this crate too.
extern crate self as spectator;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod clock;
mod config;
mod global;
mod id;
mod log;
mod measurement;
mod meter;
#[cfg(feature = "metrics-rs")]
pub mod metrics_rs;
mod publish;
mod registry;
pub mod rules;
pub mod runtime;
mod sync;

#[cfg(all(spectator_loom, test))]
mod loom_tests;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{Config, ConfigError};
pub use global::{global, stop_global};
pub use id::{Id, Tags};
pub use measurement::{Measurement, Op};
pub use meter::percentile_buckets;
pub use meter::{
    AgeGauge, Counter, DistributionSummary, Gauge, LongTask, LongTaskTimer, MaxGauge,
    MonotonicCounter, PercentileDistributionSummary, PercentileTimer, Stopwatch, Timer,
};
#[cfg(feature = "atlas")]
pub use publish::atlas::encode as wire;
pub use publish::{PublishError, PublishReport, Publisher};
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
///
/// With `long_task`, a call is a task of a [`LongTaskTimer`] from its start (an async fn's
/// first poll) until it returns, unwinds or its future is dropped: each step reports the
/// calls in flight (`activeTasks`) and how long they have run so far (`duration`), so a stuck
/// job shows while it is stuck. There is no `result` tag.
///
/// ```
/// use spectator::{global, timed};
///
/// #[timed("batch.import", source = "s3", long_task)]
/// fn import(rows: &[u32]) -> Result<usize, String> {
///     // While the call runs, it is one of the timer's active tasks.
///     let ltt = global().long_task_timer("batch.import", &[("source", "s3")]);
///     assert_eq!(ltt.active_tasks(), 1);
///     if rows.is_empty() {
///         return Err("nothing to import".into()); // ends the task too
///     }
///     Ok(rows.len())
/// }
///
/// assert_eq!(import(&[1, 2]), Ok(2));
/// assert!(import(&[]).is_err());
/// let ltt = global().long_task_timer("batch.import", &[("source", "s3")]);
/// assert_eq!(ltt.active_tasks(), 0);
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
///     /// Bytes read, from a total kept elsewhere.
///     static BYTES_READ: MonotonicCounter = "disk.bytesRead", dev = "sda";
///     /// Time since the last successful sync.
///     static LAST_SYNC: AgeGauge = "sync.age";
///     /// Migrations in flight.
///     static MIGRATIONS: LongTaskTimer = "db.migrations";
/// }
///
/// REQUESTS.increment();
/// LATENCY.record(Duration::from_millis(12));
/// QUEUE.set(3.0);
/// assert_eq!(LATENCY.count(), 1);
/// assert_eq!(QUEUE.get(), 3.0);
///
/// BYTES_READ.set(4096.0);
/// LAST_SYNC.set_now();
/// let migration = MIGRATIONS.start();
/// assert_eq!(MIGRATIONS.active_tasks(), 1);
/// migration.stop();
/// assert_eq!(MIGRATIONS.active_tasks(), 0);
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
///
/// // A task of a LongTaskTimer while the block runs.
/// let active = spectator::time!("math.long", long_task, {
///     spectator::global().long_task_timer("math.long", &[]).active_tasks()
/// });
/// assert_eq!(active, 1);
/// # drop(users());
/// ```
pub use spectator_macros::time;

#[cfg(feature = "tower")]
pub mod ipc;
#[cfg(feature = "receiver")]
pub mod receiver;
#[cfg(feature = "testing")]
pub mod testing;

/// The README's Rust snippets, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
