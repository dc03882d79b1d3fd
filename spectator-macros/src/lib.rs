//! Procedural macros for [`spectator`](https://docs.rs/spectator): `#[timed]`, `#[counted]`,
//! `metrics!` and `time!`.
//!
//! Use them through the `spectator` crate's re-exports (`spectator::timed`, ...): the expansions
//! refer to `::spectator::__private`, so this crate is not useful on its own.
//!
//! Every macro takes the same argument language: an optional (for `#[timed]`/`#[counted]`) or
//! required (for `metrics!`/`time!`) metric name string literal first, then tags written
//! `key = "value"` where the key is an identifier or a string literal (`"http.method" = "GET"`),
//! and the value a string literal. Names and tags are checked at compile time against the
//! Atlas naming rules the runtime applies (allowed characters, lengths, the number of tags and
//! the reserved keys; see <https://netflix.github.io/atlas-docs/concepts/naming/> and
//! <https://netflix.github.io/atlas-docs/api/publish/>), plus the keys the meters set
//! themselves (`statistic`, `percentile`). Each error points at the offending token and
//! suggests a fix.
//!
//! # What the expansions do
//!
//! Each call site declares one `static` holding its name and tags (in the block that makes its
//! guard, so that two attributes on one fn never clash); the meter handle is looked up
//! in `spectator::global()` the first time the site records and kept from then on. A call then
//! costs one atomic load plus the meter's own update (a counter increment, or two reads of the
//! registry clock's monotonic time and the timer's atomics); no registry lookup and no
//! allocation. The user's statements are kept untouched and in order: after the guard's `let`
//! in the same body (plain fns, `time!`), in a closure (sync fns returning `Result`) or in an
//! async block (async fns). Inner attributes (`#![allow(..)]`) stay first in the body, and the
//! code the macro adds is spanned at the macro call, so that no lint fires in user code that
//! would not fire without the macro.
//!
//! # Choices
//!
//! * The default tags `module` and `method` are added only by the argument-less form (no name);
//!   a named meter carries exactly the tags written. `module` is `module_path!()` with `::`
//!   written as `.` (`::` is outside the Atlas character set).
//! * `#[counted]` counts a call when it ends (return, early return or unwind), like `#[timed]`.
//! * An async fn is measured from its first poll to its completion. A future dropped before its
//!   first poll never started and records nothing; one dropped after it started records
//!   `result=cancelled` (or `failure` when it is dropped while the thread unwinds).
//! * `long_task` (`#[timed]` and `time!`) measures with a `LongTaskTimer`: a task starts when
//!   the call does (an async fn's first poll, or the first poll of the future a fn of the
//!   async-tail shape returns) and ends when it returns, unwinds or its future is dropped, so a
//!   cancelled future ends its task. There is no `result` tag (a task is reported while it
//!   runs, before it has an outcome, as Spectator Java's `LongTaskTimer`), so `result` is the
//!   user's to set. The argument-less form is named `method.longTask`, apart from `#[timed]`'s
//!   `method.timed`, so that both attributes can measure one fn.
//! * A flag picks the meter kind, so `percentiles` and `long_task` exclude each other, and
//!   `#[counted]` and `metrics!` (whose kind is the declared type) take no flags; each refusal
//!   says what to write instead.
//! * A `Result` that is not `core::result::Result` (a user type that happens to be named
//!   `Result`) counts as `success` unless the function panics.
//! * A fn that is not `async` but returns a future built by a trailing `async` block (or
//!   `Box::pin(async ..)`, which is what `#[async_trait]` generates) measures that future, not
//!   the construction of it.
//! * The tag limit counts the tags written; `module`, `method` and `result` are the macro's
//!   own and the user may not set them where the macro does.
//! * A tag written on `#[timed]`/`#[counted]` cannot be `result` on functions that get the
//!   outcome tag, nor `module`/`method` in the argument-less form.
//! * `method` is the function's name alone (no type name: an attribute cannot see the `impl`
//!   it sits in); raw identifiers lose their `r#`.
//! * The expansions name the runtime `::spectator`, so the dependency must keep that name
//!   (a renamed dependency, `package = "spectator"` under another key, is not supported).

#![warn(missing_docs)]

mod args;
mod errors;
mod expand;
mod func;
mod kinds;
// The Atlas naming rules, shared with the runtime (as serde_derive_internals shares
// serde_derive's sources): one file, so the two cannot disagree.
#[path = "../../spectator/src/rules.rs"]
mod rules;
mod validate;

use proc_macro::TokenStream;

/// Times every call of a function with a timer resolved once per call site.
///
/// ```ignore
/// #[spectator::timed]                                  // name `method.timed`, tags module, method
/// fn handle() {}
///
/// #[spectator::timed("server.requestLatency", endpoint = "users", percentiles)]
/// async fn users() -> Result<Vec<u8>, std::io::Error> { Ok(vec![]) }
///
/// #[spectator::timed("batch.import", long_task)]      // a LongTaskTimer: calls in flight
/// async fn import() {}
/// ```
///
/// * Without a name, the metric is `method.timed` with tags `module` (the module path, `::`
///   written as `.`) and `method` (the function name). With a name, only the tags written.
/// * The flag `percentiles` records into a `PercentileTimer` instead of a `Timer`.
/// * The flag `long_task` measures with a `LongTaskTimer`: each call is a task from its start
///   (an async fn's first poll) until it returns, unwinds or its future is dropped, reported
///   while it runs as `activeTasks` and `duration`. No `result` tag; the argument-less form is
///   named `method.longTask`. It excludes `percentiles`.
/// * An `async fn`, a fn returning a type whose last path segment is `Result`, and a fn whose
///   body ends in an `async` block or `Box::pin(async ..)` (the `#[async_trait]` shape) get the
///   tag `result` = `success` | `failure` (an `Err` or a panic) | `cancelled` (the future was
///   dropped before it completed), unless `long_task` is given. Other fns record on return and
///   on unwind.
/// * Async functions are timed from the first poll to completion.
/// * Durations are read from the registry's clock (`Clock::interval_time` of
///   `spectator::global()`: the TSC where it is sound), as `Timer::stopwatch` does.
/// * The function is kept as written: its attributes stay on it, inner attributes
///   (`#![allow(..)]`) stay first in its body, and the statements are not rewritten.
/// * `const fn`, `extern` fns and items that are not functions are refused.
///
/// Runnable examples are on `spectator::timed`.
#[proc_macro_attribute]
pub fn timed(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::fn_attr::expand(expand::fn_attr::Kind::Timed, attr.into(), item.into()).into()
}

/// Counts every call of a function with a counter resolved once per call site.
///
/// ```ignore
/// #[spectator::counted]                                // name `method.counted`, tags module, method
/// fn handle() {}
///
/// #[spectator::counted("server.numRequests", statusCode = "200")]
/// fn ok() {}
/// ```
///
/// The counter is incremented when the call ends (return or unwind). The argument rules and
/// the `result` tag are those of [`macro@timed`], without flags (`percentiles` and `long_task`
/// are refused with a pointer to `#[timed]`).
#[proc_macro_attribute]
pub fn counted(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::fn_attr::expand(expand::fn_attr::Kind::Counted, attr.into(), item.into()).into()
}

/// Declares meters as statics that dereference to their handles.
///
/// ```ignore
/// spectator::metrics! {
///     /// Requests served.
///     pub static REQUESTS: Counter = "server.numRequests", statusCode = "200";
///     static LATENCY: Timer = "server.requestLatency";
/// }
/// REQUESTS.increment();
/// ```
///
/// Meter types: the kinds of the runtime, `Counter`, `Timer`, `DistributionSummary`, `Gauge`,
/// `MaxGauge`, `PercentileTimer`, `PercentileDistributionSummary`, `MonotonicCounter`,
/// `AgeGauge` and `LongTaskTimer` (an unknown type is an error that lists them all; a path
/// such as `spectator::Counter` is accepted too). The type picks the kind, so no flags are
/// taken. Attributes, doc comments and visibility are kept. Each static looks its meter up in
/// `spectator::global()` on first use and keeps the handle.
#[proc_macro]
pub fn metrics(input: TokenStream) -> TokenStream {
    expand::declare::expand(input.into()).into()
}

/// Times a block with a timer resolved once per call site; evaluates to the block's value.
///
/// ```ignore
/// let rows = spectator::time!("db.query", table = "users", { run_query().await });
/// ```
///
/// The block stays inline: `.await`, `?` and `return` inside it work as without the macro, and
/// an early exit still records. The flag `percentiles` uses a `PercentileTimer`; `long_task`
/// makes the block a task of a `LongTaskTimer` while it runs (until it is left, or the future
/// running it is dropped). Durations are read from the monotonic time of
/// `spectator::global()`'s clock.
#[proc_macro]
pub fn time(input: TokenStream) -> TokenStream {
    expand::block::expand(input.into()).into()
}
