//! A recorder for the [`metrics`](https://docs.rs/metrics/0.24) facade (feature
//! `metrics-rs`): libraries instrumented with `metrics::counter!`, `gauge!` and `histogram!`
//! report through a spectator [`Registry`], next to the service's own meters.
//!
//! ```
//! use spectator::metrics_rs::SpectatorRecorder;
//! use spectator::Registry;
//!
//! let registry = Registry::default();
//! let recorder = SpectatorRecorder::new(registry.clone());
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::counter!("server.numRequests", "status" => "200").increment(3);
//!     metrics::gauge!("server.queueSize").set(12.0);
//! });
//! let mut polled: Vec<String> = registry
//!     .measurements()
//!     .iter()
//!     .map(|m| format!("{} {}", m.id, m.value))
//!     .collect();
//! polled.sort();
//! assert_eq!(
//!     polled,
//!     [
//!         "server.numRequests:statistic=count,status=200 3",
//!         "server.queueSize:statistic=gauge 12",
//!     ]
//! );
//! ```
//!
//! A program installs one recorder for the whole process with [`install()`] (over
//! [`global()`](crate::global)) or [`SpectatorRecorder::install`].
//!
//! # Mapping
//!
//! A key's name is the meter name and its labels are the tags; labels given in any order name
//! the same meter. Names and tags go through the registry like any other: characters outside
//! the Atlas set are sent as `_`, and the meter cap ([`Config::max_meters`](crate::Config))
//! applies.
//!
//! | `metrics` | spectator | reports each step |
//! |---|---|---|
//! | `counter!(..).increment(n)` | a counter | `statistic=count`: the sum of the increments (Add) |
//! | `counter!(..).absolute(v)` | the same counter, sampled like Spectator's `MonotonicCounter` | `statistic=count`: the increase of `v` since the previous step; nothing at the first sample; a value lower than the previous one becomes the new base (the source restarted) |
//! | `gauge!(..).set(v)`, `.increment(d)`, `.decrement(d)` | a gauge starting at 0 | `statistic=gauge`: the current value (Max), at every step from the first update on |
//! | `histogram!(..).record(v)` | a [`DistributionSummary`] | `count`, `totalAmount`, `totalOfSquares`, `max` |
//! | `histogram!` of a name described with `Unit::Seconds`, `Milliseconds`, `Microseconds` or `Nanoseconds` | a [`Timer`], values converted to seconds | `count`, `totalTime`, `totalOfSquares`, `max` (seconds) |
//! | `histogram!` of a name chosen with [`SpectatorRecorderBuilder::percentiles`] | a [`PercentileDistributionSummary`], or a [`PercentileTimer`] when described with a time unit | the same, plus `percentile` bucket counts |
//! | `describe_counter!`, `describe_gauge!`, descriptions | nothing (Atlas keeps no descriptions or units) | |
//!
//! # Where `metrics` and Spectator differ
//!
//! | | `metrics` (and the Prometheus exporter) | here |
//! |---|---|---|
//! | counter values | a cumulative total, scraped | the increase during each step (Atlas turns it into a rate per second) |
//! | `Counter::absolute(v)` | sets the total (the exporter keeps the largest value seen) | MonotonicCounter: reports increases between steps, and a decrease is a restart (new base), not a negative delta; when one key gets both `increment` and `absolute`, both add up |
//! | gauge lifetime | reported until the program ends | reported at every step while it holds a finite value, with or without live handles (an up/down value that stands must not vanish), unlike a native [`Gauge`](crate::Gauge) and its 15-minute TTL; `set(f64::NAN)` stops it (reported once as NaN, which tells spectatord to stop; with no handle left, it then expires like any idle meter) |
//! | gauge arithmetic | `increment`/`decrement` on an `f64` | the same (an atomic add); an infinite value is kept but not sent |
//! | histograms | buckets chosen by the exporter | Atlas statistics (count, total, total of squares, max); percentile buckets only for the chosen names, with Spectator's fixed bucket layout |
//! | negative or NaN histogram values | recorded | ignored, as by the native meters (amounts and durations are never negative) |
//! | units | metadata | a time unit turns a histogram into a timer whose values are converted to seconds; other units change nothing |
//! | a histogram described with a time unit *after* its first use | (no effect on values) | a name keeps the meter type of its first registration or description, whichever came first: a histogram used before it was described stays a distribution summary (values recorded as given, a rate-limited warning says so). Describe time histograms before recording (the `histogram!(unit: .., description: .., ..)` form describes at each call, so it is always in time). A recorder remembers the types of its first 2048 histogram names; past that, a name is resolved at each registration and its description is not remembered |
//! | a name already used by a native meter | (separate worlds) | the facade's counters, gauges and histograms are meter types of their own: asking the registry for the same name and tags as another type returns a meter that reports nothing (with a rate-limited warning), as for any two types |
//! | meter expiry | none | a handle held by the program keeps its meter, as for native meters; `counter!(..)` and friends cache their handle per thread (up to 1024 keys per metric type and thread, emptied when full), which keeps those meters registered while cached. Counters fed by `absolute` keep their base and do not expire |
//!
//! # Cost
//!
//! The handles returned by the recorder are the registry's own meters behind an `Arc`: a
//! cached `metrics::Counter` increments with one atomic add (plus the facade's dynamic call),
//! like a cached [`Counter`](crate::Counter). `counter!(name, labels)` looks the key up at
//! every call; the recorder answers from a per-thread cache keyed by the key's precomputed
//! hash without locks, hashing of strings or allocation, and asks the registry only for a key
//! this thread has not seen.

mod cache;
mod counter;
mod gauge;
mod histogram;

use crate::log::warn_limited;
use crate::sync::lock;
use crate::{DistributionSummary, PercentileDistributionSummary, PercentileTimer, Registry, Timer};
use arc_swap::ArcSwap;
use counter::FacadeCounter;
use gauge::FacadeGauge;
use hashbrown::HashMap;
use histogram::{FacadeHistogram, Inner};
use metrics::{Key, KeyName, Metadata, SharedString, Unit};
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most histogram names a recorder remembers the meter type of; past it, a name is resolved
/// at each registration (a description with a time unit is then not remembered). Each new
/// name copies the map (readers never lock), so the bound also bounds that work.
const MAX_HISTOGRAM_NAMES: usize = 2048;

/// Most labels turned into tags on the stack; a key with more allocates (once per thread and
/// key, thanks to the cache).
const STACK_TAGS: usize = 8;

/// Gives each recorder a distinct id for the per-thread cache.
static NEXT_RECORDER: AtomicU64 = AtomicU64::new(1);

/// The unit of the values a timer histogram records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimeUnit {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl TimeUnit {
    fn of(unit: Option<Unit>) -> Option<TimeUnit> {
        match unit? {
            Unit::Seconds => Some(TimeUnit::Seconds),
            Unit::Milliseconds => Some(TimeUnit::Milliseconds),
            Unit::Microseconds => Some(TimeUnit::Microseconds),
            Unit::Nanoseconds => Some(TimeUnit::Nanoseconds),
            _ => None,
        }
    }
}

/// What a histogram name records into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shape {
    /// `None`: a distribution summary.
    time: Option<TimeUnit>,
    percentiles: bool,
}

type Names = HashMap<Arc<str>, Shape, BuildHasherDefault<rustc_hash::FxHasher>>;

/// A [`metrics::Recorder`] that records into a spectator [`Registry`]; see the
/// [module docs](self) for the mapping.
///
/// ```
/// use metrics::Unit;
/// use spectator::metrics_rs::SpectatorRecorder;
/// use spectator::{ManualClock, Registry};
///
/// let registry = Registry::builder().clock(ManualClock::new(0, 0)).build();
/// let recorder = SpectatorRecorder::builder(registry.clone())
///     .percentiles("http.server.") // these histograms get percentiles
///     .build();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::describe_histogram!("http.server.latency", Unit::Milliseconds, "request latency");
///     metrics::histogram!("http.server.latency", "route" => "/").record(250.0);
/// });
/// let polled = registry.measurements();
/// let total = polled.iter().find(|m| m.id.tag("statistic") == Some("totalTime")).unwrap();
/// assert_eq!(total.value, 0.25); // seconds
/// assert!(polled.iter().any(|m| m.id.tag("statistic") == Some("percentile")));
/// ```
pub struct SpectatorRecorder {
    registry: Registry,
    /// Distinct per recorder: the per-thread cache's keys include it.
    id: u64,
    percentile_prefixes: Box<[Box<str>]>,
    /// The meter type each histogram name got when first registered or described.
    histograms: ArcSwap<Names>,
    /// Serialises changes to `histograms`.
    histograms_write: Mutex<()>,
}

impl std::fmt::Debug for SpectatorRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectatorRecorder")
            .field("registry", &self.registry)
            .field("percentile_prefixes", &self.percentile_prefixes)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SpectatorRecorder`] with options.
#[derive(Debug)]
pub struct SpectatorRecorderBuilder {
    registry: Registry,
    percentile_prefixes: Vec<Box<str>>,
}

impl SpectatorRecorderBuilder {
    /// Histograms whose name starts with `prefix` become percentile meters: a
    /// [`PercentileTimer`] when described with a time unit, otherwise a
    /// [`PercentileDistributionSummary`]. May be given several times; `""` selects every
    /// histogram.
    pub fn percentiles(mut self, prefix: &str) -> Self {
        self.percentile_prefixes.push(prefix.into());
        self
    }

    /// The recorder.
    pub fn build(self) -> SpectatorRecorder {
        SpectatorRecorder {
            registry: self.registry,
            id: NEXT_RECORDER.fetch_add(1, Ordering::Relaxed),
            percentile_prefixes: self.percentile_prefixes.into_boxed_slice(),
            histograms: ArcSwap::from_pointee(Names::default()),
            histograms_write: Mutex::new(()),
        }
    }
}

/// Installs a [`SpectatorRecorder`] over [`global()`](crate::global) as the process's
/// `metrics` recorder.
///
/// # Errors
/// When a global `metrics` recorder is already installed (the error holds the recorder that
/// was not installed).
pub fn install() -> Result<(), metrics::SetRecorderError<SpectatorRecorder>> {
    SpectatorRecorder::new(crate::global().clone()).install()
}

impl SpectatorRecorder {
    /// A recorder into `registry`, with no percentile histograms.
    pub fn new(registry: Registry) -> SpectatorRecorder {
        SpectatorRecorder::builder(registry).build()
    }

    /// Starts building a recorder into `registry`.
    pub fn builder(registry: Registry) -> SpectatorRecorderBuilder {
        SpectatorRecorderBuilder {
            registry,
            percentile_prefixes: Vec::new(),
        }
    }

    /// The registry it records into.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Installs this recorder as the process's `metrics` recorder.
    ///
    /// # Errors
    /// When a global `metrics` recorder is already installed.
    pub fn install(self) -> Result<(), metrics::SetRecorderError<SpectatorRecorder>> {
        metrics::set_global_recorder(self)
    }

    /// The registry's meter of kind `M` for `key`, its labels passed as tags.
    fn meter<M: crate::meter::MeterKind>(&self, key: &Key) -> M {
        let labels = key.labels();
        if labels.len() <= STACK_TAGS {
            let mut tags = [("", ""); STACK_TAGS];
            let mut n = 0;
            for (slot, label) in tags.iter_mut().zip(labels) {
                *slot = (label.key(), label.value());
                n += 1;
            }
            self.registry.meter(key.name(), &tags[..n])
        } else {
            let tags: Vec<(&str, &str)> = labels.map(|l| (l.key(), l.value())).collect();
            self.registry.meter(key.name(), &tags)
        }
    }

    /// The meter type of histogram `name`: the one remembered, or decided now.
    fn shape(&self, name: &str) -> Shape {
        match self.histograms.load().get(name) {
            Some(shape) => *shape,
            None => self.settle(name, None),
        }
    }

    /// Decides (under the write lock) and remembers the meter type of `name`, unless it has
    /// one already; returns the one that holds.
    #[cold]
    fn settle(&self, name: &str, time: Option<TimeUnit>) -> Shape {
        let _w = lock(&self.histograms_write);
        let current = self.histograms.load_full();
        if let Some(shape) = current.get(name) {
            return *shape;
        }
        let shape = Shape {
            time,
            percentiles: self
                .percentile_prefixes
                .iter()
                .any(|p| name.starts_with(&**p)),
        };
        if current.len() < MAX_HISTOGRAM_NAMES {
            let mut next = Names::clone(&current);
            next.insert(name.into(), shape);
            self.histograms.store(Arc::new(next));
        }
        shape
    }

    #[cold]
    fn new_histogram(&self, key: &Key) -> metrics::Histogram {
        use TimeUnit::*;
        fn h<M: Inner, const NS: u64>(r: &SpectatorRecorder, key: &Key) -> metrics::Histogram {
            metrics::Histogram::from_arc(r.meter::<FacadeHistogram<M, NS>>(key).0)
        }
        let shape = self.shape(key.name());
        match (shape.percentiles, shape.time) {
            (false, None) => h::<DistributionSummary, 0>(self, key),
            (true, None) => h::<PercentileDistributionSummary, 0>(self, key),
            (false, Some(Seconds)) => h::<Timer, 1_000_000_000>(self, key),
            (false, Some(Milliseconds)) => h::<Timer, 1_000_000>(self, key),
            (false, Some(Microseconds)) => h::<Timer, 1_000>(self, key),
            (false, Some(Nanoseconds)) => h::<Timer, 1>(self, key),
            (true, Some(Seconds)) => h::<PercentileTimer, 1_000_000_000>(self, key),
            (true, Some(Milliseconds)) => h::<PercentileTimer, 1_000_000>(self, key),
            (true, Some(Microseconds)) => h::<PercentileTimer, 1_000>(self, key),
            (true, Some(Nanoseconds)) => h::<PercentileTimer, 1>(self, key),
        }
    }
}

impl metrics::Recorder for SpectatorRecorder {
    /// Atlas keeps no descriptions or units: nothing to do.
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    /// Atlas keeps no descriptions or units: nothing to do.
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    /// A time unit makes the name's histograms timers, if none was registered before.
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        let Some(time) = TimeUnit::of(unit) else {
            return;
        };
        let name = key.as_str();
        let shape = match self.histograms.load().get(name) {
            Some(shape) => *shape,
            None => self.settle(name, Some(time)),
        };
        if shape.time != Some(time) {
            warn_limited!(target: "spectator::metrics_rs", name, ?unit, kept = ?shape.time,
                "histogram described with a time unit after its first use or with another \
                 unit; it keeps the meter type it was first given (a distribution summary when \
                 `kept` is None): describe histograms before recording into them");
        }
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> metrics::Counter {
        cache::get_or_make(
            |m| &m.counters,
            |m| &mut m.counters,
            self.id,
            key,
            || metrics::Counter::from_arc(self.meter::<FacadeCounter>(key).0),
        )
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> metrics::Gauge {
        cache::get_or_make(
            |m| &m.gauges,
            |m| &mut m.gauges,
            self.id,
            key,
            || metrics::Gauge::from_arc(self.meter::<FacadeGauge>(key).0),
        )
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> metrics::Histogram {
        cache::get_or_make(
            |m| &m.histograms,
            |m| &mut m.histograms,
            self.id,
            key,
            || self.new_histogram(key),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{Label, Recorder};

    fn meta() -> Metadata<'static> {
        Metadata::new(module_path!(), metrics::Level::INFO, None)
    }

    #[test]
    fn the_thread_cache_is_bounded_and_matches_keys_by_content() {
        let registry = Registry::default();
        let recorder = SpectatorRecorder::new(registry.clone());
        let before = cache::cached_len().0;
        let key = |i: usize| Key::from_parts("cached", vec![Label::new("i", i.to_string())]);
        recorder.register_counter(&key(0), &meta()).increment(1);
        assert_eq!(cache::cached_len().0, before + 1);
        // An equal key built anew (other pointers) is a hit: nothing added.
        recorder.register_counter(&key(0), &meta()).increment(1);
        assert_eq!(cache::cached_len().0, before + 1);
        for i in 0..cache::MAX_ENTRIES + 10 {
            recorder.register_counter(&key(i), &meta()).increment(1);
        }
        assert!(cache::cached_len().0 <= cache::MAX_ENTRIES);
        let polled = registry.measurements();
        assert_eq!(polled.len(), cache::MAX_ENTRIES + 10);
        let first = polled.iter().find(|m| m.id.tag("i") == Some("0")).unwrap();
        assert_eq!(first.value, 3.0);
    }

    #[test]
    fn histogram_names_are_remembered_up_to_a_bound() {
        let recorder = SpectatorRecorder::new(Registry::default());
        for i in 0..MAX_HISTOGRAM_NAMES + 5 {
            let name = format!("h{i}");
            recorder.describe_histogram(name.into(), Some(Unit::Seconds), "".into());
        }
        assert_eq!(recorder.histograms.load().len(), MAX_HISTOGRAM_NAMES);
        let shape = recorder.shape("h0");
        assert_eq!(shape.time, Some(TimeUnit::Seconds));
        // Past the bound: resolved at each registration as an undescribed name.
        let late = format!("h{}", MAX_HISTOGRAM_NAMES + 1);
        assert_eq!(recorder.shape(&late).time, None);
    }
}
