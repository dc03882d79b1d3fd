//! The registry: one meter per id, found without locks, polled for measurements.
//!
//! # How the map works
//! Meters live in an open-addressed table of entry pointers ([`table`]): a lookup probes it
//! with a borrowed key (name + tag slice), takes no lock and allocates nothing; an insert,
//! serialised with other inserts by a mutex that readers never see, stores one pointer in
//! place, and replaces the table by one twice the size when it is half full. Each thread
//! keeps its own reference to the current table and a memo of its call sites ([`local`]), so
//! that a repeated lookup touches no shared line but the meter's own.
//!
//! # Expiry
//! A meter that only the registry holds (no live handle, no `static`) and that saw no update
//! for [`Config::meter_ttl`] is dropped at a poll. To make sure a handle never writes into a
//! dropped meter, removal marks the entry retired, then re-checks that no handle was taken;
//! a reader that takes a handle re-checks the mark and, if set, goes through the insert
//! path, which waits for the removal decision. Between its write and its read each side
//! passes a full barrier, split unequally (`sync::barrier`): a compiler fence on every
//! lookup, one `membarrier` system call on a poll that removes meters.

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::id::{Id, IdRef, TableKey};
use crate::log::warn_limited;
use crate::measurement::Measurement;
use crate::meter::{
    for_each_meter_kind, polled_source, summary_bucket_range, timer_bucket_range, AgeGauge,
    Counter, DistributionSummary, Gauge, LongTaskTimer, MaxGauge, Meter, MeterKind,
    MonotonicCounter, PercentileDistributionSummary, PercentileSummaryCore, PercentileTimer,
    PercentileTimerCore, Poll, PolledGauge, PolledMonotonicCounter, Step, Timer,
};
use crate::publish::{Connection, LoopPlace, Outlet, PublishError, PublishReport, Publisher};
use crate::sync::retire::{handle_is_live, try_retire_all};
use crate::sync::{lock, AtomicBool};
use arc_swap::ArcSwap;
use std::any::TypeId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use table::Table;

mod fixed;
mod local;
mod table;

/// One registered meter.
pub(crate) struct Entry {
    /// The id it is registered under.
    id: Id,
    core: Arc<dyn Meter>,
    /// Wall time (ms) of the last poll that found it active.
    last_active: AtomicU64,
    /// Set while a poll decides whether to remove it.
    retired: AtomicBool,
}

/// Where meters live. Cheap to clone: clones share one registry.
///
/// ```
/// use spectator::Registry;
/// let registry = Registry::default(); // records, never publishes
/// let c = registry.counter("server.numRequests", &[("statusCode", "200")]);
/// c.increment();
/// let polled = registry.measurements();
/// assert_eq!(polled.len(), 1);
/// assert_eq!(polled[0].id.to_string(), "server.numRequests:statistic=count,statusCode=200");
/// assert_eq!(polled[0].value, 1.0);
/// assert!(registry.measurements().is_empty()); // deltas: nothing new since
/// ```
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<RegistryInner>,
}

pub(crate) struct RegistryInner {
    config: Config,
    clock: Arc<dyn Clock>,
    table: ArcSwap<Table>,
    /// Bumped after each replacement of `table`, so that a thread's reference to it (see
    /// `local`) is checked with one load.
    version: AtomicU64,
    /// This registry's number, unique in the process (keys the threads' copies).
    uid: u64,
    /// Serialises inserts and removals (never taken by a lookup that finds its meter).
    /// Holds the current table too, so that a writer reads it without `ArcSwap::load`.
    write_lock: Mutex<Arc<Table>>,
    /// Serialises polls: each meter's interval is handed to one poll. Holds the number of
    /// measurements the last poll took, to size the next one's vector once.
    poll_lock: Mutex<usize>,
    /// Where each step goes, and whether a publish loop runs.
    outlet: Outlet,
    /// `spectator.meters{id=refused}`: ids turned away by [`Config::max_meters`].
    refused: std::sync::OnceLock<Counter>,
    /// Bounds on tag values ([`RegistryBuilder::tag_value_limit`]), applied to new ids only.
    limits: Vec<TagLimit>,
    /// `spectator.meters{id=limited}`: tag values replaced by [`OTHERS`].
    limited: std::sync::OnceLock<Counter>,
    /// Sources of polled meters that the registry itself keeps alive (runtime metrics).
    owned_sources: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
}

impl Drop for RegistryInner {
    fn drop(&mut self) {
        // Frees the table now if this thread held the last reference (other threads let go
        // of theirs at their next lookup in another registry, or when they exit).
        local::forget(self.uid);
    }
}

/// The value that replaces a tag value past its limit (Spectator Java's
/// `CardinalityLimiters.OTHERS`).
const OTHERS: &str = "--others--";

/// For meters named `name`, the first `max` distinct values of tag `key`.
struct TagLimit {
    name: String,
    key: String,
    max: usize,
    /// The values kept so far (at most `max`); only the lookup-miss path takes this lock.
    kept: Mutex<std::collections::HashSet<Box<str>>>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Default for Registry {
    /// A registry with the default [`Config`] (no URI: it records but never publishes) and
    /// the [`SystemClock`].
    fn default() -> Registry {
        Registry::builder().build()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("meters", &self.inner.table.load().len())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Registry {
    /// Starts building a registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder::default()
    }

    /// The configuration this registry was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The registry's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Number of meters registered now.
    pub fn len(&self) -> usize {
        self.inner.table.load().len()
    }

    /// Whether no meter is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    for_each_meter_kind!(accessors);

    /// The gauge for `name` and `tags`, reported while its last `set` is at most `ttl` old
    /// (instead of the registry's meter TTL, 15 minutes): for a value that is stale sooner
    /// (a queue size sampled every few seconds) or that must stay longer.
    ///
    /// The TTL belongs to the id's gauge: this call sets it, on a new gauge or on the gauge
    /// already registered for the id (a plain [`gauge`](Registry::gauge) included), and the
    /// latest call wins. [`gauge`](Registry::gauge) for the same id returns the same gauge
    /// and leaves its TTL as it is (spectatord treats `g,TTL:` and `g:` lines the same way).
    /// An unowned gauge whose TTL is longer than the meter TTL is kept until its TTL ends.
    /// Over the spectatord output it is sent at each step while fresh as a `g,SECONDS:` line,
    /// SECONDS being what is left of its TTL, so that spectatord stops reporting it when this
    /// registry does.
    ///
    /// ```
    /// use spectator::{ManualClock, Registry};
    /// use std::time::Duration;
    /// let clock = ManualClock::new(1_700_000_000_000, 0);
    /// let registry = Registry::builder().clock(clock.clone()).build();
    /// let queue = registry.gauge_with_ttl("worker.queueSize", &[], Duration::from_secs(30));
    /// queue.set(4.0);
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(registry.measurements().len(), 1);
    /// clock.advance(Duration::from_secs(1));
    /// assert!(registry.measurements().is_empty()); // stale
    /// ```
    pub fn gauge_with_ttl(&self, name: &str, tags: &[(&str, &str)], ttl: Duration) -> Gauge {
        let gauge = self.gauge(name, tags);
        gauge.core.set_ttl(millis(ttl));
        gauge
    }

    /// Registers a gauge sampled at each poll: `f(&source)` is reported as `statistic=gauge`
    /// (op Max; NaN and infinities are not sent). The registry keeps only a [`Weak`](std::sync::Weak)
    /// on `source`: once the source's last `Arc` is dropped the gauge reports nothing, and
    /// it is removed like any idle meter (after the meter TTL). Spectator Java's
    /// `PolledMeter.using(registry).monitorValue(obj, f)`.
    ///
    /// Nothing is returned: the registry polls the meter, nobody records into it. Registering
    /// the same id again replaces its source. `f` runs on the polling thread, without any of
    /// the registry's locks held; a panic in it is caught (and logged), and that poll reports
    /// nothing for the gauge. An id already registered as another kind of meter keeps that
    /// meter (a warning is logged) and the source is not polled.
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
    /// let registry = spectator::Registry::default();
    /// let pool = Arc::new(AtomicUsize::new(3));
    /// registry.polled_gauge("pool.size", &[], &pool, |p| p.load(Ordering::Relaxed) as f64);
    /// assert_eq!(registry.measurements()[0].value, 3.0);
    /// drop(pool);
    /// assert!(registry.measurements().is_empty());
    /// ```
    pub fn polled_gauge<T: Send + Sync + 'static>(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        source: &Arc<T>,
        f: impl Fn(&T) -> f64 + Send + Sync + 'static,
    ) {
        let m: PolledGauge = self.meter(name, tags);
        m.core.polled.set_source(polled_source(source, f));
    }

    /// Registers a monotonic counter sampled at each poll: as a
    /// [`MonotonicCounter`] whose value is `f(&source)` at every poll (the increase since
    /// the previous poll is reported as `statistic=count`; nothing at the first sample or
    /// when the value went down; NaN, infinite and negative values are skipped). Otherwise as
    /// [`polled_gauge`](Registry::polled_gauge): a `Weak` on the source, nothing reported
    /// once it is dropped, then removed when idle. Spectator Java's
    /// `PolledMeter.using(registry).monitorMonotonicCounter(obj, f)`.
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicU64, Ordering}, Arc};
    /// let registry = spectator::Registry::default();
    /// let bytes = Arc::new(AtomicU64::new(100));
    /// registry.polled_monotonic_counter("net.bytesIn", &[], &bytes, |b| b.load(Ordering::Relaxed) as f64);
    /// assert!(registry.measurements().is_empty()); // the first sample is the base
    /// bytes.store(250, Ordering::Relaxed);
    /// assert_eq!(registry.measurements()[0].value, 150.0);
    /// ```
    pub fn polled_monotonic_counter<T: Send + Sync + 'static>(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        source: &Arc<T>,
        f: impl Fn(&T) -> f64 + Send + Sync + 'static,
    ) {
        let m: PolledMonotonicCounter = self.meter(name, tags);
        m.core.polled.set_source(polled_source(source, f));
    }

    /// Keeps `source` alive as long as the registry: for polled meters whose source nobody
    /// else holds (the runtime metrics).
    pub(crate) fn own_source(&self, source: Arc<dyn std::any::Any + Send + Sync>) {
        lock(&self.inner.owned_sources).push(source);
    }

    /// The percentile timer for `name` and `tags`, bucketing durations clamped to
    /// `min ..= max` instead of 10 ms ..= 60 s (the timer statistics use the unclamped
    /// durations). A narrower range puts the 276 buckets where the durations are; a `min`
    /// above `max` is swapped with it (with a warning). The range is fixed when the meter is
    /// created: for an id already registered this returns that meter, with its range (a
    /// warning is logged when it differs).
    ///
    /// ```
    /// use std::time::Duration;
    /// let registry = spectator::Registry::default();
    /// let fast = registry.percentile_timer_with_range(
    ///     "cache.get", &[], Duration::from_micros(10), Duration::from_millis(50));
    /// fast.record(Duration::from_micros(80));
    /// assert_eq!(fast.count(), 1);
    /// ```
    pub fn percentile_timer_with_range(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        min: Duration,
        max: Duration,
    ) -> PercentileTimer {
        let (lo, hi) = timer_bucket_range(name, min, max);
        let timer: PercentileTimer = self.meter_made(name, tags, |clock| {
            PercentileTimerCore::with_range(clock.clone(), lo, hi)
        });
        if timer.core.range_ns() != (lo, hi) {
            warn_limited!(target: "spectator::registry", name, ?min, ?max,
                "percentile timer already registered with another range; keeping its range");
        }
        timer
    }

    /// The percentile distribution summary for `name` and `tags`, bucketing amounts clamped
    /// to `min ..= max` instead of 0 ..= `i64::MAX` (the summary statistics use the unclamped
    /// amounts). A NaN `min` is taken as 0 and a NaN `max` as `i64::MAX`; bounds outside
    /// 0 ..= `i64::MAX` are clamped into it and a `min` above `max` is swapped with it (each
    /// with a warning). The range is fixed when the meter is created, as for
    /// [`percentile_timer_with_range`](Registry::percentile_timer_with_range).
    ///
    /// ```
    /// let registry = spectator::Registry::default();
    /// let sizes = registry.percentile_distribution_summary_with_range(
    ///     "rpc.payload", &[], 100.0, 10_000.0);
    /// sizes.record(5.0); // counted in the bucket of 100
    /// assert_eq!(sizes.total_amount(), 5.0);
    /// ```
    pub fn percentile_distribution_summary_with_range(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        min: f64,
        max: f64,
    ) -> PercentileDistributionSummary {
        let (lo, hi) = summary_bucket_range(name, min, max);
        let summary: PercentileDistributionSummary =
            self.meter_made(name, tags, |_| PercentileSummaryCore::with_range(lo, hi));
        if summary.core.range() != (lo, hi) {
            warn_limited!(target: "spectator::registry", name, min, max,
                "percentile distribution summary already registered with another range; keeping its range");
        }
        summary
    }

    pub(crate) fn meter<M: MeterKind>(&self, name: &str, tags: &[(&str, &str)]) -> M {
        self.meter_made(name, tags, M::new_core)
    }

    fn meter_with_id<M: MeterKind>(&self, id: &Id) -> M {
        match self.find(id) {
            Some(m) => m,
            // The registry keeps every tag in the id's own allocation (what lookups compare).
            None => self.insert(id.stored(), None, M::new_core),
        }
    }

    /// As [`Registry::meter`], a new meter's core made by `make` (other settings).
    fn meter_made<M: MeterKind>(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        make: impl FnOnce(&Arc<dyn Clock>) -> M::Core,
    ) -> M {
        match local::remembered(self, name, tags) {
            Some(m) => m,
            None => self.meter_looked_up(name, tags, make),
        }
    }

    /// [`meter_made`](Registry::meter_made) when the memo did not know the meter: out of
    /// line, so that the memo's path stays small where it is inlined.
    #[inline(never)]
    fn meter_looked_up<M: MeterKind>(
        &self,
        name: &str,
        tags: &[(&str, &str)],
        make: impl FnOnce(&Arc<dyn Clock>) -> M::Core,
    ) -> M {
        match local::find(self, name, tags) {
            Ok(m) => m,
            Err(missed) => self.insert(new_id(name, tags, missed.key), missed.absent_at, make),
        }
    }

    /// The lock-free path: a handle on an existing meter, `None` to take the insert path.
    #[inline]
    fn find<M: MeterKind, Q: TableKey + ?Sized>(&self, key: &Q) -> Option<M> {
        local::with_table(&self.inner, |table| self.live_handle(table.get(key)?))
    }

    /// A handle on `entry` unless it is being (or was) removed.
    #[inline]
    fn live_handle<M: MeterKind>(&self, entry: &Entry) -> Option<M> {
        let handle = self.handle(entry)?;
        // Pairs with `try_retire_all` in `retire`: either the poll sees this handle's
        // reference and keeps the meter, or we see the retired mark and ask again under the
        // write lock. A removed meter keeps its mark, so a replaced table (see `local`) that
        // still lists it sends the lookup to the write lock too.
        handle_is_live(&entry.retired).then_some(handle)
    }

    /// Makes `table` the current table; lookups see it from their next call. `writer` is
    /// the write lock's guard.
    fn replace_table(&self, writer: &mut Arc<Table>, table: Table) {
        *writer = Arc::new(table);
        self.publish_table(writer);
    }

    /// Makes `table` (the write lock's copy) the one lookups read.
    fn publish_table(&self, table: &Arc<Table>) {
        self.inner.table.store(Arc::clone(table));
        self.inner.version.fetch_add(1, Ordering::Release);
    }

    /// A handle of the requested kind, or a detached one when the id has another kind.
    #[inline]
    fn handle<M: MeterKind>(&self, entry: &Entry) -> Option<M> {
        Some(try_handle(entry).unwrap_or_else(|(id, registered)| self.mismatch(&id, registered)))
    }

    #[cold]
    fn mismatch<M: MeterKind>(&self, id: &Id, registered: &'static str) -> M {
        warn_limited!(target: "spectator::registry",
            %id, registered, requested = M::KIND,
            "id already registered as another meter type; returning a meter that reports nothing");
        M::detached(&self.inner.clock)
    }

    /// Registers a meter for `id` (unless one was registered meanwhile). `absent_at`: the
    /// registry's version and the table's length when a lookup found `id` absent (see
    /// `local::Missed`).
    #[cold]
    fn insert<M: MeterKind>(
        &self,
        id: Id,
        absent_at: Option<(u64, usize)>,
        make: impl FnOnce(&Arc<dyn Clock>) -> M::Core,
    ) -> M {
        let (id, mut absent_at) = match self.limit_tags(id) {
            Ok(id) => (id, absent_at),
            Err(limited) => {
                // A tag value past its limit: the meter is the `--others--` one.
                if let Some(m) = self.find(&limited) {
                    return m;
                }
                (limited, None)
            }
        };
        // Before the lock: a warning may reach a log subscriber that records a metric into
        // this registry (its insert takes the lock too).
        check_id(&id);
        let mut writer = lock(&self.inner.write_lock);
        // The version changes with each replaced table, the length with each insert (both
        // under this lock): unchanged, the lookup's probe of this very table still holds.
        if absent_at != Some((self.inner.version.load(Ordering::Relaxed), writer.len())) {
            absent_at = None;
        }
        if let Some(entry) = absent_at.is_none().then(|| writer.get(&id)).flatten() {
            // Inserted meanwhile, or kept by a poll's retire check (which holds this lock).
            let mismatch = match try_handle(entry) {
                Ok(m) => return m,
                Err(mismatch) => mismatch,
            };
            drop(writer); // warned without the lock, as above
            return self.mismatch(&mismatch.0, mismatch.1);
        }
        if writer.len() >= self.inner.config.max_meters && !id.name().starts_with("spectator.") {
            drop(writer);
            return self.refuse(&id);
        }
        let (handle, core) = M::create_from(make(&self.inner.clock));
        let entry = triomphe::Arc::new(Entry {
            id,
            core,
            last_active: AtomicU64::new(self.inner.clock.coarse_wall_time()),
            retired: AtomicBool::new(false),
        });
        if writer.has_room() {
            writer.put(entry);
        } else {
            self.grow(&mut writer);
            writer.put(entry);
        }
        handle
    }

    /// Replaces the current table by one twice the size. `writer` is the write lock's guard.
    #[cold]
    fn grow(&self, writer: &mut Arc<Table>) {
        Table::grow(
            writer,
            |table| self.publish_table(table),
            || local::forget(self.inner.uid),
        );
    }

    /// `Ok(id)` when no tag value of `id` is past its limit (the value is then kept if it is
    /// new), else `Err` with those values replaced by [`OTHERS`].
    fn limit_tags(&self, id: Id) -> Result<Id, Id> {
        // The registry's own meters are never limited (counting a limit is one of them).
        if self.inner.limits.is_empty() || id.name().starts_with("spectator.") {
            return Ok(id);
        }
        let mut limited: Option<Id> = None;
        for limit in self.inner.limits.iter().filter(|l| l.name == id.name()) {
            let current = limited.as_ref().unwrap_or(&id);
            let Some(value) = current.tag(&limit.key) else {
                continue;
            };
            if value == OTHERS {
                continue;
            }
            let mut kept = lock(&limit.kept);
            if kept.contains(value) {
                continue;
            }
            if kept.len() < limit.max {
                kept.insert(value.into());
                continue;
            }
            drop(kept);
            limited = Some(current.with_tag(&limit.key, OTHERS));
        }
        match limited {
            None => Ok(id),
            Some(other) => {
                tracing::debug!(target: "spectator::registry", %id, "tag value past its limit; recorded as --others--");
                self.inner
                    .limited
                    .get_or_init(|| self.counter("spectator.meters", &[("id", "limited")]))
                    .increment();
                Err(other)
            }
        }
    }

    #[cold]
    fn refuse<M: MeterKind>(&self, id: &Id) -> M {
        warn_limited!(target: "spectator::registry", %id, max_meters = self.inner.config.max_meters,
            "registry is full; returning a meter that reports nothing (raise Config::max_meters \
             or bound the ids' tag values)");
        self.inner
            .refused
            .get_or_init(|| self.counter("spectator.meters", &[("id", "refused")]))
            .increment();
        M::detached(&self.inner.clock)
    }

    /// Takes this interval's measurements from every meter, exactly as a publish would:
    /// deltas since the previous poll, levels for gauges, nothing for idle meters. Common
    /// tags are not added here (the publisher adds them on the wire). Also drops expired
    /// meters.
    pub fn measurements(&self) -> Vec<Measurement> {
        self.poll().measurements
    }

    /// One poll: the measurements, and the age gauges' set times for the spectatord output.
    fn poll(&self) -> Step {
        let mut last_len = lock(&self.inner.poll_lock);
        let now = self.inner.clock.wall_time();
        let ttl = millis(self.inner.config.meter_ttl);
        let poll = Poll {
            now_ms: now,
            gauge_ttl_ms: ttl,
        };
        let table = self.inner.table.load_full();
        // Timers report 4 measurements, idle meters none: the last poll is the best guess.
        let mut out = Vec::with_capacity(table.len().max(*last_len));
        let mut hints = Vec::new();
        let mut idle = Vec::new();
        for entry in table.entries() {
            let updated = entry.core.measure(&entry.id, &poll, &mut out);
            if let Some(hint) = entry.core.line_hint(&entry.id, &poll) {
                hints.push(hint);
            }
            // Only polls (serialised above) move it: a plain load and store, no locked RMW.
            if updated > entry.last_active.load(Ordering::Relaxed) {
                entry.last_active.store(updated, Ordering::Relaxed);
            }
            if updated < now && is_expired(entry, now, ttl) {
                idle.push(entry.id.clone());
            }
        }
        drop(table);
        if !idle.is_empty() {
            self.retire(&idle, &poll, ttl, &mut out);
        }
        *last_len = out.len();
        Step {
            measurements: out,
            hints,
        }
    }

    /// Polls the registry once and sends the step to the configured output now: the Atlas
    /// aggregator (with what earlier failed publishes kept, in batches of `batch_size`,
    /// retried within the step) or spectatord-protocol lines.
    ///
    /// A registry without an output does nothing here (it does not poll, so
    /// [`measurements`](Registry::measurements) still sees everything) and returns an empty
    /// report. The self-metrics `spectator.measurements{..}` are updated afterwards and go
    /// out with the next publish.
    pub async fn publish(&self) -> PublishReport {
        self.publish_on(Connection::Shared).await
    }

    pub(crate) async fn publish_on(&self, connection: Connection) -> PublishReport {
        let output = &self.inner.outlet.output;
        if let Err(e) = output.check(&self.inner.config) {
            if !matches!(e, PublishError::NoUri) {
                warn_limited!(target: "spectator::registry", "cannot publish: {e}");
            }
            return PublishReport::default();
        }
        let step = self.poll();
        let report = output.send(step, &self.inner.config, connection).await;
        self.record_self_metrics(&report);
        tracing::debug!(target: "spectator::registry", ?report, "published");
        report
    }

    fn record_self_metrics(&self, r: &PublishReport) {
        const NAME: &str = "spectator.measurements";
        if r.sent > 0 {
            self.counter(NAME, &[("id", "sent")]).add(r.sent as f64);
        }
        for (error, n) in r.drops() {
            if n > 0 {
                self.counter(NAME, &[("id", "dropped"), ("error", error)])
                    .add(n as f64);
            }
        }
    }

    /// Starts publishing every `frequency`, at wall-clock multiples of it (by the registry's
    /// clock), until the returned [`Publisher`] is stopped or dropped.
    ///
    /// The loop runs on the caller's tokio runtime when called from inside one, otherwise on
    /// one background thread with its own current-thread runtime. Recording threads never wait
    /// for it.
    ///
    /// # Errors
    /// [`PublishError::NoUri`] when the registry has no output (it records but cannot
    /// publish), [`PublishError::InvalidUri`] / [`PublishError::InvalidLocation`] for an
    /// output that cannot be used, [`PublishError::AlreadyStarted`] when a publisher of this
    /// registry is still running, [`PublishError::Thread`] when the background thread cannot
    /// be started.
    pub fn start(&self) -> Result<Publisher, PublishError> {
        self.start_at(LoopPlace::Auto)
    }

    pub(crate) fn start_at(&self, place: LoopPlace) -> Result<Publisher, PublishError> {
        self.inner.outlet.output.check(&self.inner.config)?;
        Publisher::start(self.clone(), &self.inner.outlet, place)
    }

    /// Marks this process's publish loop as ended (the publisher calls it when it stops).
    pub(crate) fn release_loop(&self) {
        self.inner.outlet.release();
    }

    /// The lines a `memory` output holds, drained (oldest first); empty for other outputs.
    ///
    /// ```
    /// let registry = spectator::Registry::builder().output_location("memory").build();
    /// registry.gauge("server.queueSize", &[("zone", "a")]).set(3.0);
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// registry.publish().await;
    /// # });
    /// assert_eq!(registry.take_written_lines(), ["g:server.queueSize,statistic=gauge,zone=a:3"]);
    /// assert!(registry.take_written_lines().is_empty());
    /// ```
    pub fn take_written_lines(&self) -> Vec<String> {
        self.inner.outlet.output.take_written_lines()
    }

    /// Removes the meters in `ids` that are still unowned and idle. A handle may have written
    /// to one between its poll above and its removal here, so each removed meter is measured
    /// once more (into `out`): nothing can write to it after that.
    fn retire(&self, ids: &[Id], poll: &Poll, ttl: u64, out: &mut Vec<Measurement>) {
        let now = poll.now_ms;
        let mut writer = lock(&self.inner.write_lock);
        let current = Arc::clone(&writer);
        let candidates: Vec<&Entry> = ids
            .iter()
            .filter_map(|id| current.get(id))
            .filter(|e| is_expired(e, now, ttl))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let removed = try_retire_all(&candidates, |e| &e.retired, |e| is_expired(e, now, ttl));
        for entry in &removed {
            entry.core.measure(&entry.id, poll, out);
        }
        if removed.is_empty() {
            return;
        }
        let removed = removed.len();
        let kept = current.rebuilt(|e| !e.retired.load(Ordering::Relaxed));
        self.replace_table(&mut writer, kept);
        tracing::debug!(target: "spectator::registry", removed, "expired idle meters");
    }
}

/// The registry's accessors, one pair per meter kind (see `meter::for_each_meter_kind`).
macro_rules! accessors {
    ($($handle:ident => $by_name:ident, $by_id:ident, $noun:literal;)*) => {$(
        #[doc = concat!("The ", $noun, " for `name` and `tags`, created on first use.")]
        #[doc = ""]
        #[doc = concat!("See [`", stringify!($handle), "`] for what it reports.")]
        pub fn $by_name(&self, name: &str, tags: &[(&str, &str)]) -> $handle {
            self.meter(name, tags)
        }
        #[doc = concat!("The ", $noun, " for `id`, created on first use.")]
        pub fn $by_id(&self, id: &Id) -> $handle {
            self.meter_with_id(id)
        }
    )*};
}
use accessors;

fn is_expired(entry: &Entry, now: u64, ttl: u64) -> bool {
    Arc::strong_count(&entry.core) == 1
        && entry.core.expires()
        && now.saturating_sub(entry.last_active.load(Ordering::Relaxed)) >= ttl
}

/// A handle on `entry`'s core as an `M`, else (another kind) its id and kind for the warning.
#[inline]
fn try_handle<M: MeterKind>(entry: &Entry) -> Result<M, (Id, &'static str)> {
    if entry.core.core_type() == TypeId::of::<M::Core>() {
        // SAFETY: just checked.
        return Ok(unsafe { typed_handle(entry) });
    }
    Err((entry.id.clone(), entry.core.kind()))
}

/// A handle on `entry`'s core as an `M`.
///
/// # Safety
/// `entry.core` must be an `M::Core` (its `core_type()` was `TypeId::of::<M::Core>()`; an
/// entry's core never changes).
#[inline]
pub(super) unsafe fn typed_handle<M: MeterKind>(entry: &Entry) -> M {
    let raw = Arc::into_raw(Arc::clone(&entry.core)).cast::<M::Core>();
    // SAFETY: the value behind `core` is an `M::Core` (the caller's contract): this is the
    // cast `Arc::downcast` makes after the same check.
    M::from_core(unsafe { Arc::from_raw(raw) })
}

/// The id of `name` and `tags`, from the key a lookup that missed made when it made one
/// (its tags already sorted and hashed).
#[cold]
fn new_id(name: &str, tags: &[(&str, &str)], key: Option<IdRef<'_>>) -> Id {
    match key {
        Some(key) => key.to_id(),
        None => Id::new(name, tags),
    }
}

/// Warns (rate-limited) about ids the aggregator would reject or that will be changed on
/// the wire. The meter is registered anyway: recording must never fail.
fn check_id(id: &Id) {
    // One pass over the name, then each key and value.
    let (mut empty_tag, mut bad_chars) = (false, false);
    for (i, s) in id.strings().enumerate() {
        empty_tag |= i > 0 && s.is_empty();
        bad_chars |= !crate::rules::is_valid(s);
    }
    if id.name().is_empty() {
        warn_limited!(target: "spectator::registry", %id, "meter name is empty; the aggregator will reject it");
    }
    if bad_chars {
        warn_limited!(target: "spectator::registry", %id,
            "id has characters outside -._A-Za-z0-9~^; they are sent as '_'");
    }
    if empty_tag {
        warn_limited!(target: "spectator::registry", %id, "id has an empty tag key or value; the aggregator will reject it");
    }
}

/// Builds a [`Registry`].
///
/// ```
/// use spectator::{ManualClock, Registry};
/// use std::time::Duration;
/// let registry = Registry::builder()
///     .uri("http://127.0.0.1:7101/api/v4/update")
///     .frequency(Duration::from_secs(10))
///     .common_tags(&[("nf.app", "www")])
///     .clock(ManualClock::new(0, 0))
///     .build();
/// assert_eq!(registry.config().batch_size, 10_000);
/// ```
#[derive(Default)]
pub struct RegistryBuilder {
    config: Config,
    clock: Option<Arc<dyn Clock>>,
    limits: Vec<TagLimit>,
}

impl RegistryBuilder {
    /// The Atlas aggregator's publish endpoint, e.g. `http://localhost:7101/api/v4/update`.
    pub fn uri(mut self, uri: &str) -> Self {
        self.config.uri = Some(uri.to_owned());
        self
    }
    /// Where each step goes: an Atlas URL, spectatord (`udp`, `udp://host:port`, `unix`,
    /// `unix:///path`), `file:///path`, `stdout`, `stderr`, `memory` or `none`; see
    /// [`Config::output_location`]. Wins over [`uri`](RegistryBuilder::uri). A location that
    /// cannot be used makes [`Registry::start`] return
    /// [`PublishError::InvalidLocation`](crate::PublishError::InvalidLocation).
    ///
    /// ```
    /// let registry = spectator::Registry::builder().output_location("memory").build();
    /// registry.counter("server.numRequests", &[]).increment();
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// registry.publish().await;
    /// # });
    /// assert_eq!(registry.take_written_lines(), ["c:server.numRequests,statistic=count:1"]);
    /// ```
    pub fn output_location(mut self, location: &str) -> Self {
        self.config.output_location = Some(location.to_owned());
        self
    }
    /// Step between publishes.
    pub fn frequency(mut self, frequency: Duration) -> Self {
        self.config.frequency = frequency;
        self
    }
    /// Most measurements in one POST.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.config.batch_size = batch_size;
        self
    }
    /// Timeout of one POST.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }
    /// Tags added to every measurement on the wire (added to those already set).
    pub fn common_tags(mut self, tags: &[(&str, &str)]) -> Self {
        self.config
            .common_tags
            .extend(tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }
    /// The clock (default [`SystemClock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }
    /// Bounds the values of tag `key` on meters named `name`: the first `max` distinct values
    /// registered are kept, and any later value is recorded as `--others--` (Spectator Java's
    /// `CardinalityLimiters.first`), so that a runaway tag value (a user id, a URL with ids in
    /// it) cannot flood Atlas with series. Each replacement counts in
    /// `spectator.meters{id=limited}`.
    ///
    /// The limit applies when a new id is registered: the lookup of a meter already
    /// registered is unchanged (lock-free, allocation-free). A value once kept stays kept,
    /// even after its meter expired. Looking up a value past the limit is slower (it takes the
    /// limit's lock and builds the `--others--` id at each call): cache the handle where you
    /// can. Several limits may apply to one name (one per key); a second limit for the same
    /// name and key replaces the first. `max = 0` sends every value as `--others--`. The
    /// registry's own `spectator.*` meters are not limited.
    ///
    /// ```
    /// let registry = spectator::Registry::builder()
    ///     .tag_value_limit("server.numRequests", "customer", 2)
    ///     .build();
    /// for customer in ["a", "b", "c", "d"] {
    ///     registry.counter("server.numRequests", &[("customer", customer)]).increment();
    /// }
    /// let ms = registry.measurements();
    /// let others = ms.iter().find(|m| m.id.tag("customer") == Some("--others--")).unwrap();
    /// assert_eq!(others.value, 2.0); // c and d
    /// ```
    pub fn tag_value_limit(mut self, name: &str, key: &str, max: usize) -> Self {
        self.limits.retain(|l| !(l.name == name && l.key == key));
        self.limits.push(TagLimit {
            name: name.to_owned(),
            key: key.to_owned(),
            max,
            kept: Mutex::default(),
        });
        self
    }
    /// Replaces the whole configuration (later setters still apply on top).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Builds the registry. An output location that cannot be used is reported by
    /// [`Registry::start`] (and logged by [`Registry::publish`]); recording works regardless.
    pub fn build(self) -> Registry {
        crate::sync::barrier::init();
        let table = Arc::new(Table::default());
        Registry {
            inner: Arc::new(RegistryInner {
                outlet: Outlet::new(&self.config),
                config: self.config,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                table: ArcSwap::new(Arc::clone(&table)),
                version: AtomicU64::new(0),
                uid: {
                    static NEXT_UID: AtomicU64 = AtomicU64::new(0);
                    NEXT_UID.fetch_add(1, Ordering::Relaxed)
                },
                write_lock: Mutex::new(Arc::clone(&table)),
                poll_lock: Mutex::new(0),
                refused: std::sync::OnceLock::new(),
                limits: self.limits,
                limited: std::sync::OnceLock::new(),
                owned_sources: Mutex::default(),
            }),
        }
    }
}
