//! What the expansions of `#[timed]`, `#[counted]`, `metrics!` and `time!` call.
//!
//! A measured call or block holds a [`Guard`] (a counter or timer, recorded when it drops) or,
//! with `long_task`, a [`LongTaskGuard`] (a task of a long task timer, running until it drops).
//!
//! Not a public API: exposed as `spectator::__private`, hidden from the docs, and free to change
//! in any release. Everything here is small and `#[inline]` on the hot path; the one-time meter
//! lookup is out of line and `#[cold]`.
//!
//! A call site is a `static` [`Site`]: the metric name and tags as `&'static` data plus lazily
//! filled cells for the meter handle(s), resolved against [`global()`](crate::global).
//! Recording is then one atomic load to read the cell and the meter's own atomics (for timers,
//! two reads of the global registry's clock); no registry lookup and no allocation per call.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{Clock, Counter, LongTask, LongTaskTimer, PercentileTimer, Registry, Timer};

/// A meter type a call site can hold.
pub trait SiteMeter: Send + Sync + 'static {
    /// Looks the meter up (or creates it) in `registry`.
    fn resolve(registry: &Registry, name: &str, tags: &[(&str, &str)]) -> Self;
}

/// `SiteMeter` for every kind in the runtime's one list of meter kinds (the macro crate's
/// `METER_TYPES` mirrors it).
macro_rules! site_meter {
    ($($handle:ident => $by_name:ident, $by_id:ident, $noun:literal;)*) => {$(
        impl SiteMeter for crate::$handle {
            fn resolve(registry: &Registry, name: &str, tags: &[(&str, &str)]) -> Self {
                registry.$by_name(name, tags)
            }
        }
    )*};
}

crate::meter::for_each_meter_kind!(site_meter);

/// How a measured call ended; the value of the `result` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Returned normally (for a `Result`: returned `Ok`).
    Success,
    /// Returned `Err`, or panicked.
    Failure,
    /// The future was dropped before it completed.
    Cancelled,
}

impl Outcome {
    /// The tag value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Cancelled => "cancelled",
        }
    }

    const fn slot(self) -> usize {
        match self {
            Outcome::Success => 1,
            Outcome::Failure => 2,
            Outcome::Cancelled => 3,
        }
    }
}

/// One call site: a metric name, its tags, and the meter handles, each resolved against
/// [`crate::global()`] on first use and kept for the life of the program.
///
/// Slot 0 holds the meter without a `result` tag; slots 1 to 3 the meters tagged
/// `result=success|failure|cancelled`, each resolved only when that outcome first happens.
/// Tag values have `::` replaced by `.`, so that `module_path!()` gives a valid Atlas value.
///
pub struct Site<M> {
    name: &'static str,
    tags: &'static [(&'static str, &'static str)],
    meters: [OnceLock<M>; 4],
}

impl<M> Site<M> {
    /// A call site resolved against `spectator::global()`.
    pub const fn new(name: &'static str, tags: &'static [(&'static str, &'static str)]) -> Self {
        Site {
            name,
            tags,
            meters: [
                OnceLock::new(),
                OnceLock::new(),
                OnceLock::new(),
                OnceLock::new(),
            ],
        }
    }
}

impl<M: SiteMeter> Site<M> {
    /// The meter without a `result` tag.
    #[inline]
    pub fn get(&self) -> &M {
        self.slot(0, None)
    }

    /// The meter tagged `result=<outcome>`.
    #[inline]
    pub fn outcome(&self, outcome: Outcome) -> &M {
        self.slot(outcome.slot(), Some(outcome))
    }

    #[inline]
    fn slot(&self, index: usize, outcome: Option<Outcome>) -> &M {
        match self.meters[index].get() {
            Some(meter) => meter,
            None => self.init(index, outcome),
        }
    }

    #[cold]
    #[inline(never)]
    fn init(&self, index: usize, outcome: Option<Outcome>) -> &M {
        self.meters[index].get_or_init(|| {
            let values: Vec<String> = self
                .tags
                .iter()
                .map(|(_, v)| v.replace("::", "."))
                .collect();
            let mut tags: Vec<(&str, &str)> = self
                .tags
                .iter()
                .zip(&values)
                .map(|((k, _), v)| (*k, v.as_str()))
                .collect();
            if let Some(outcome) = outcome {
                tags.push(("result", outcome.as_str()));
            }
            M::resolve(crate::global(), self.name, &tags)
        })
    }
}

/// A `static` declared by `metrics!`: a [`Site`] that dereferences to its meter.
///
/// It has no methods of its own (only associated functions), so that every method call on the
/// static reaches the meter through `Deref`.
pub struct StaticMeter<M>(Site<M>);

impl<M> StaticMeter<M> {
    /// A meter resolved against `spectator::global()` on first use.
    pub const fn new(name: &'static str, tags: &'static [(&'static str, &'static str)]) -> Self {
        StaticMeter(Site::new(name, tags))
    }
}

impl<M: SiteMeter> std::ops::Deref for StaticMeter<M> {
    type Target = M;

    #[inline]
    fn deref(&self) -> &M {
        self.0.get()
    }
}

impl<M> fmt::Debug for StaticMeter<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticMeter")
            .field("name", &self.0.name)
            .field("tags", &self.0.tags)
            .finish_non_exhaustive()
    }
}

impl<M> fmt::Debug for Site<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

/// A meter a [`Guard`] can record into when a call ends.
pub trait Record: SiteMeter {
    /// What is noted when the call starts (the clock and the start time, for timers).
    type Start: Copy + Send + Sync;
    /// Notes the start of a call.
    fn start() -> Self::Start;
    /// Records one call that started at `start`.
    fn stop(&self, start: Self::Start);
}

impl Record for Counter {
    type Start = ();

    #[inline]
    fn start() {}

    #[inline]
    fn stop(&self, _start: ()) {
        self.increment();
    }
}

/// When a timed call started, on the clock of the registry its timer belongs to: the
/// [`global()`](crate::global) registry's, which every call site resolves against. Reading
/// that clock (rather than [`std::time::Instant`]) lets a [`ManualClock`](crate::ManualClock)
/// drive what the macros record, as it drives [`Timer::stopwatch`].
#[derive(Clone, Copy)]
pub struct Started {
    clock: &'static dyn Clock,
    at: u64,
}

impl Started {
    #[inline]
    fn now() -> Started {
        let clock = global_clock();
        Started {
            clock,
            at: clock.interval_time(),
        }
    }

    /// The time since the start.
    #[inline]
    fn elapsed(self) -> Duration {
        Duration::from_nanos(self.clock.interval_time().saturating_sub(self.at))
    }
}

/// The clock of [`global()`](crate::global)'s registry, looked up once: the registry, and so its
/// clock, never change once `global()` is set. One atomic load per call instead of two
/// out-of-line calls.
#[inline]
fn global_clock() -> &'static dyn Clock {
    static CLOCK: OnceLock<&'static dyn Clock> = OnceLock::new();
    *CLOCK.get_or_init(|| &**crate::global().clock())
}

impl Record for Timer {
    type Start = Started;

    #[inline]
    fn start() -> Started {
        Started::now()
    }

    #[inline]
    fn stop(&self, start: Started) {
        self.record(start.elapsed());
    }
}

impl Record for PercentileTimer {
    type Start = Started;

    #[inline]
    fn start() -> Started {
        Started::now()
    }

    #[inline]
    fn stop(&self, start: Started) {
        self.record(start.elapsed());
    }
}

/// Records one call into a [`Site`] when dropped: on return, early return, unwind, or when the
/// future holding it is dropped.
///
/// A `plain` guard records into the untagged meter. A `tagged` guard records into the meter
/// tagged with the outcome given to [`Guard::finish`]; dropped unfinished it records `failure`
/// while the thread panics and `cancelled` otherwise.
#[must_use = "the guard records when it is dropped"]
pub struct Guard<M: Record + 'static> {
    site: &'static Site<M>,
    start: M::Start,
    tagged: bool,
    outcome: Option<Outcome>,
}

impl<M: Record> Guard<M> {
    /// Starts measuring a call recorded without a `result` tag.
    #[inline]
    pub fn plain(site: &'static Site<M>) -> Self {
        Guard {
            site,
            start: M::start(),
            tagged: false,
            outcome: None,
        }
    }

    /// Starts measuring a call recorded with a `result` tag.
    #[inline]
    pub fn tagged(site: &'static Site<M>) -> Self {
        Guard {
            site,
            start: M::start(),
            tagged: true,
            outcome: None,
        }
    }

    /// Sets how the call ended; recorded when the guard drops.
    #[inline]
    pub fn finish(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl<M: Record> Drop for Guard<M> {
    #[inline]
    fn drop(&mut self) {
        let meter = if self.tagged {
            let outcome = self.outcome.unwrap_or_else(unfinished);
            self.site.outcome(outcome)
        } else {
            self.site.get()
        };
        meter.stop(self.start);
    }
}

/// Holds one running task of a call site's [`LongTaskTimer`] while a measured fn or block
/// runs: the task starts when the guard is made and ends when it drops (on return, early
/// return, unwind, or with the future holding it). A long task has no outcome, so there is
/// no `result` tag.
#[must_use = "the task ends when the guard is dropped"]
pub struct LongTaskGuard {
    task: LongTask,
}

impl LongTaskGuard {
    /// Starts a task of the site's long task timer.
    #[inline]
    pub fn start(site: &'static Site<LongTaskTimer>) -> Self {
        LongTaskGuard {
            task: site.get().start(),
        }
    }
}

impl fmt::Debug for LongTaskGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LongTaskGuard").field(&self.task).finish()
    }
}

/// The outcome of a call whose guard dropped before `finish`.
#[cold]
fn unfinished() -> Outcome {
    if std::thread::panicking() {
        Outcome::Failure
    } else {
        Outcome::Cancelled
    }
}

/// Calls `f`: the statements of a measured fn returning a `Result`, as a closure whose return
/// type is the fn's, so that `return` and `?` inside it act on its value.
#[inline(always)]
pub fn call<R, F: FnOnce() -> R>(f: F) -> R {
    f()
}

/// Makes `registry` the process-wide registry that [`global()`](crate::global) returns, and
/// so the one every macro call site resolves against; gives it back if `global()` was already
/// set (by an earlier call to it or to this function).
///
/// For tests that drive the macros with a [`ManualClock`](crate::ManualClock): call it before
/// anything touches `global()`, in a test binary of its own. The registry is used as given:
/// nothing is read from the environment and no publisher is started.
pub fn set_global(registry: Registry) -> Result<(), Registry> {
    crate::global::GLOBAL.set(registry)
}

/// Wraps a returned value so that [`ProbeResult`] (for `Result`s) or [`ProbeAny`] (anything
/// else) picks its outcome: `(&Probe(&value)).__spectator_outcome()`.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// The outcome of a `Result`: `Ok` is a success, `Err` a failure.
pub trait ProbeResult {
    /// The outcome.
    fn __spectator_outcome(&self) -> Outcome;
}

impl<T, E> ProbeResult for Probe<'_, Result<T, E>> {
    #[inline]
    fn __spectator_outcome(&self) -> Outcome {
        match self.0 {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// The outcome of any value that is not a `Result`: a success.
pub trait ProbeAny {
    /// The outcome.
    fn __spectator_outcome(&self) -> Outcome;
}

impl<T: ?Sized> ProbeAny for &Probe<'_, T> {
    #[inline]
    fn __spectator_outcome(&self) -> Outcome {
        Outcome::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // The borrow is what the expansions write: it is needless only for `Result`s.
    #[allow(clippy::needless_borrow)]
    fn probes_pick_the_outcome() {
        let ok: Result<u8, ()> = Ok(1);
        let err: Result<u8, ()> = Err(());
        assert_eq!((&Probe(&ok)).__spectator_outcome(), Outcome::Success);
        assert_eq!((&Probe(&err)).__spectator_outcome(), Outcome::Failure);
        assert_eq!((&Probe(&5u8)).__spectator_outcome(), Outcome::Success);
        assert_eq!((&Probe(&())).__spectator_outcome(), Outcome::Success);
    }
}
