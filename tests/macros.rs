//! Behaviour of `#[timed]`, `#[counted]`, `metrics!` and `time!` against `spectator::global()`.
//! (Long task durations on a `ManualClock` are in `macros_long_task.rs`.)
//!
//! Every test uses metric names of its own (tests run in parallel against one global registry)
//! and reads meters back by looking them up with the exact expected id. Nothing here polls the
//! registry (`measurements()` would reset the other tests' counters).

use std::future::Future;
use std::panic::catch_unwind;
use std::pin::Pin;
use std::time::Duration;

use spectator::{counted, global, metrics, time, timed};

fn counter(name: &str, tags: &[(&str, &str)]) -> f64 {
    global().counter(name, tags).count()
}

fn timer(name: &str, tags: &[(&str, &str)]) -> u64 {
    global().timer(name, tags).count()
}

fn outcomes(name: &str, tags: &[(&str, &str)]) -> [u64; 3] {
    ["success", "failure", "cancelled"].map(|r| {
        let mut t = tags.to_vec();
        t.push(("result", r));
        timer(name, &t)
    })
}

fn counted_outcomes(name: &str) -> [f64; 3] {
    ["success", "failure", "cancelled"].map(|r| counter(name, &[("result", r)]))
}

// ---------------------------------------------------------------- defaults and free fns

#[timed]
fn timed_default() -> u32 {
    7
}

#[counted]
fn counted_default() {}

mod nested {
    #[spectator::counted]
    pub fn in_module() {}

    #[spectator::timed]
    pub fn r#match() {}
}

#[test]
fn argument_less_forms_use_default_name_and_tags() {
    assert_eq!(timed_default(), 7);
    assert_eq!(timed_default(), 7);
    let tags = [("module", "macros"), ("method", "timed_default")];
    assert_eq!(timer("method.timed", &tags), 2);

    counted_default();
    let tags = [("module", "macros"), ("method", "counted_default")];
    assert_eq!(counter("method.counted", &tags), 1.0);

    nested::in_module();
    let tags = [("module", "macros.nested"), ("method", "in_module")];
    assert_eq!(
        counter("method.counted", &tags),
        1.0,
        "module path uses `.`"
    );

    nested::r#match();
    let tags = [("module", "macros.nested"), ("method", "match")];
    assert_eq!(timer("method.timed", &tags), 1, "raw identifiers lose `r#`");
}

#[timed("macros.free.latency", endpoint = "users", "http.method" = "GET")]
fn free_named(x: u32) -> u32 {
    if x == 0 {
        return 100; // early return still records
    }
    x * 2
}

#[test]
fn named_form_uses_only_the_written_tags() {
    assert_eq!(free_named(2), 4);
    assert_eq!(free_named(0), 100);
    let tags = [("endpoint", "users"), ("http.method", "GET")];
    assert_eq!(timer("macros.free.latency", &tags), 2);
    assert_eq!(timer("macros.free.latency", &[]), 0);
}

#[timed("macros.free.slow")]
fn slow() {
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn timed_records_the_elapsed_time() {
    slow();
    let t = global().timer("macros.free.slow", &[]);
    assert_eq!(t.count(), 1);
    assert!(
        t.total_time() >= Duration::from_millis(20),
        "{:?}",
        t.total_time()
    );
}

// ---------------------------------------------------------------- generics, impl Trait, attrs

#[counted("macros.generic.calls")]
fn generic<T>(value: &T) -> String
where
    T: std::fmt::Display + std::fmt::Debug + ?Sized,
{
    format!("{value}")
}

#[timed("macros.impl_trait.latency")]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

#[counted("macros.attrs.calls")]
#[must_use]
#[inline]
pub(crate) unsafe fn attrs_kept(p: *const u8) -> u8 {
    *p
}

#[test]
fn generic_impl_trait_and_unsafe_fns() {
    assert_eq!(generic(&5u8), "5");
    assert_eq!(generic("x"), "x");
    assert_eq!(
        counter("macros.generic.calls", &[]),
        2.0,
        "one site for all instances"
    );

    assert_eq!(evens(7).collect::<Vec<_>>(), [0, 2, 4, 6]);
    assert_eq!(timer("macros.impl_trait.latency", &[]), 1);

    let byte = 9u8;
    // SAFETY: the pointer comes from a live reference.
    assert_eq!(unsafe { attrs_kept(&byte) }, 9);
    assert_eq!(counter("macros.attrs.calls", &[]), 1.0);
}

// ---------------------------------------------------------------- methods and traits

struct Service {
    hits: u32,
    name: String,
}

impl Service {
    #[counted("macros.method.by_ref")]
    fn by_ref(&self) -> &str {
        &self.name
    }

    #[counted("macros.method.by_mut")]
    fn by_mut(&mut self) -> &mut u32 {
        self.hits += 1;
        &mut self.hits
    }

    #[counted("macros.method.by_value")]
    fn into_name(self) -> String {
        self.name
    }

    #[counted("macros.method.result_ref")]
    fn checked(&mut self, ok: bool) -> Result<&mut u32, String> {
        if !ok {
            return Err("no".into());
        }
        Ok(&mut self.hits)
    }

    #[timed("macros.method.assoc")]
    fn new(name: &str) -> Self {
        Service {
            hits: 0,
            name: name.to_string(),
        }
    }
}

trait Greeter {
    fn greet(&self, who: &str) -> String;

    #[counted("macros.trait.default")]
    fn twice(&self, who: &str) -> String {
        format!("{0}{0}", self.greet(who))
    }
}

impl Greeter for Service {
    #[counted("macros.trait.impl")]
    fn greet(&self, who: &str) -> String {
        format!("{} greets {who}", self.name)
    }
}

#[test]
fn methods_with_every_receiver_and_trait_methods() {
    let mut s = Service::new("svc");
    assert_eq!(s.by_ref(), "svc");
    *s.by_mut() += 10;
    assert_eq!(s.hits, 11);
    assert_eq!(*s.checked(true).unwrap(), 11);
    assert!(s.checked(false).is_err());
    assert_eq!(s.twice("bob"), "svc greets bobsvc greets bob");
    assert_eq!(s.into_name(), "svc");

    assert_eq!(timer("macros.method.assoc", &[]), 1);
    assert_eq!(counter("macros.method.by_ref", &[]), 1.0);
    assert_eq!(counter("macros.method.by_mut", &[]), 1.0);
    assert_eq!(counter("macros.method.by_value", &[]), 1.0);
    assert_eq!(
        counted_outcomes("macros.method.result_ref"),
        [1.0, 1.0, 0.0]
    );
    assert_eq!(counter("macros.trait.default", &[]), 1.0);
    assert_eq!(counter("macros.trait.impl", &[]), 1.0);
}

// ---------------------------------------------------------------- Result outcomes

#[derive(Debug)]
struct AppError;

impl From<std::num::ParseIntError> for AppError {
    fn from(_: std::num::ParseIntError) -> Self {
        AppError
    }
}

#[timed("macros.result.parse")]
fn parse(s: &str) -> Result<u32, AppError> {
    let n: u32 = s.parse()?; // `?` converts through From, as without the macro
    if n == 0 {
        return Err(AppError);
    }
    if n == 1 {
        return Ok(1);
    }
    Ok(n * 10)
}

#[counted("macros.result.io")]
fn io_result(fail: bool) -> std::io::Result<()> {
    if fail {
        Err(std::io::Error::other("boom"))?;
    }
    Ok(())
}

#[timed("macros.result.impl_trait")]
fn impl_in_result(s: &str) -> Result<impl std::fmt::Display, AppError> {
    let n: u32 = s.parse()?;
    Ok(n)
}

#[test]
fn result_functions_tag_success_and_failure() {
    assert_eq!(parse("3").unwrap(), 30);
    assert_eq!(parse("1").unwrap(), 1);
    assert!(parse("x").is_err());
    assert!(parse("0").is_err());
    assert_eq!(outcomes("macros.result.parse", &[]), [2, 2, 0]);
    assert_eq!(timer("macros.result.parse", &[]), 0, "no untagged meter");

    io_result(false).unwrap();
    io_result(true).unwrap_err();
    io_result(true).unwrap_err();
    assert_eq!(counted_outcomes("macros.result.io"), [1.0, 2.0, 0.0]);

    assert_eq!(impl_in_result("4").unwrap().to_string(), "4");
    assert!(impl_in_result("-").is_err());
    assert_eq!(outcomes("macros.result.impl_trait", &[]), [1, 1, 0]);
}

// ---------------------------------------------------------------- panics

#[timed("macros.panic.plain")]
fn panics_plain(panic: bool) -> u32 {
    if panic {
        panic!("boom");
    }
    1
}

#[counted("macros.panic.result")]
fn panics_result(panic: bool) -> Result<u32, AppError> {
    if panic {
        panic!("boom");
    }
    Ok(1)
}

#[test]
fn panics_are_recorded() {
    assert!(catch_unwind(|| panics_plain(true)).is_err());
    assert_eq!(panics_plain(false), 1);
    assert_eq!(timer("macros.panic.plain", &[]), 2);

    assert!(catch_unwind(|| panics_result(true)).is_err());
    assert!(panics_result(false).is_ok());
    assert_eq!(counted_outcomes("macros.panic.result"), [1.0, 1.0, 0.0]);
}

// ---------------------------------------------------------------- async

#[timed("macros.async.fetch", percentiles)]
async fn fetch(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n + 1
}

#[timed("macros.async.try")]
async fn try_fetch(s: &str) -> Result<u32, AppError> {
    tokio::task::yield_now().await;
    let n: u32 = s.parse()?;
    if n == 0 {
        return Err(AppError);
    }
    Ok(n)
}

#[counted("macros.async.cancel")]
async fn never_finishes() {
    std::future::pending::<()>().await;
}

#[counted("macros.async.panic")]
async fn async_panics() -> u32 {
    tokio::task::yield_now().await;
    panic!("boom")
}

struct Worker {
    base: u32,
}

impl Worker {
    #[timed("macros.async.method")]
    async fn add(&mut self, n: u32) -> Result<u32, AppError> {
        self.base += n;
        Ok(self.base)
    }
}

struct Named {
    name: String,
}

impl Named {
    #[timed("macros.receivers.borrowed")]
    async fn name(&self) -> &str {
        &self.name
    }

    #[timed("macros.receivers.lifetime")]
    async fn first<'a>(&'a self, other: &'a str) -> Result<&'a str, AppError> {
        self.name.get(..1).or(other.get(..1)).ok_or(AppError)
    }

    #[counted("macros.receivers.boxed")]
    fn boxed(self: Box<Self>) -> Result<String, AppError> {
        Ok(self.name)
    }

    #[counted("macros.receivers.arc")]
    async fn shared(self: std::sync::Arc<Self>, suffix: impl AsRef<str>) -> String {
        format!("{}{}", self.name, suffix.as_ref())
    }
}

trait AsyncJob {
    fn run(&self) -> impl Future<Output = u32> + Send;
}

impl AsyncJob for Worker {
    // `async fn` in a trait impl
    #[counted("macros.async.trait")]
    async fn run(&self) -> u32 {
        self.base
    }
}

/// The shape `#[async_trait]` produces: the body is `Box::pin(async move { .. })`.
trait BoxedJob {
    fn boxed<'a>(
        &'a self,
        ok: bool,
    ) -> Pin<Box<dyn Future<Output = Result<u32, AppError>> + Send + 'a>>;
}

impl BoxedJob for Worker {
    #[timed("macros.async.boxed")]
    fn boxed<'a>(
        &'a self,
        ok: bool,
    ) -> Pin<Box<dyn Future<Output = Result<u32, AppError>> + Send + 'a>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if ok {
                Ok(self.base)
            } else {
                Err(AppError)
            }
        })
    }
}

#[counted("macros.async.impl_future")]
#[allow(clippy::manual_async_fn)] // the shape under test
fn returns_future(n: u32) -> impl Future<Output = u32> {
    async move { n * 3 }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test]
async fn async_fns_tag_success_failure_and_cancelled() {
    assert_eq!(assert_send(fetch(1)).await, 2);
    let p = global().percentile_timer("macros.async.fetch", &[("result", "success")]);
    assert_eq!(p.count(), 1);

    assert_eq!(assert_send(try_fetch("5")).await.unwrap(), 5);
    assert!(try_fetch("x").await.is_err());
    assert!(try_fetch("0").await.is_err());
    assert_eq!(outcomes("macros.async.try", &[]), [1, 2, 0]);

    // Polled once, then dropped by the timeout: cancelled.
    let r = tokio::time::timeout(Duration::from_millis(5), never_finishes()).await;
    assert!(r.is_err());
    // Never polled at all: the body never started, nothing is recorded.
    drop(never_finishes());
    assert_eq!(counted_outcomes("macros.async.cancel"), [0.0, 0.0, 1.0]);

    let joined = tokio::spawn(async_panics()).await;
    assert!(joined.unwrap_err().is_panic());
    assert_eq!(counted_outcomes("macros.async.panic"), [0.0, 1.0, 0.0]);

    let mut w = Worker { base: 1 };
    assert_eq!(w.add(2).await.unwrap(), 3);
    assert_eq!(outcomes("macros.async.method", &[]), [1, 0, 0]);
    assert_eq!(assert_send(w.run()).await, 3);
    assert_eq!(counted_outcomes("macros.async.trait"), [1.0, 0.0, 0.0]);

    assert_eq!(w.boxed(true).await.unwrap(), 3);
    assert!(w.boxed(false).await.is_err());
    let pending = w.boxed(true);
    drop(pending); // never polled: nothing recorded
    assert_eq!(outcomes("macros.async.boxed", &[]), [1, 1, 0]);

    let n = Named {
        name: "ann".to_string(),
    };
    assert_eq!(n.name().await, "ann");
    assert_eq!(n.first("x").await.unwrap(), "a");
    assert_eq!(Box::new(n).boxed().unwrap(), "ann");
    let shared = std::sync::Arc::new(Named {
        name: "bo".to_string(),
    });
    assert_eq!(shared.shared("b").await, "bob");
    assert_eq!(outcomes("macros.receivers.borrowed", &[]), [1, 0, 0]);
    assert_eq!(outcomes("macros.receivers.lifetime", &[]), [1, 0, 0]);
    assert_eq!(counted_outcomes("macros.receivers.boxed"), [1.0, 0.0, 0.0]);
    assert_eq!(counted_outcomes("macros.receivers.arc"), [1.0, 0.0, 0.0]);

    let fut = returns_future(2);
    assert_eq!(
        counted_outcomes("macros.async.impl_future"),
        [0.0; 3],
        "counted when run"
    );
    assert_eq!(fut.await, 6);
    assert_eq!(
        counted_outcomes("macros.async.impl_future"),
        [1.0, 0.0, 0.0]
    );
}

// ---------------------------------------------------------------- metrics!

mod declared {
    spectator::metrics! {
        /// Requests served.
        pub static REQUESTS: Counter = "macros.declared.requests", statusCode = "200";
        pub(crate) static LATENCY: Timer = "macros.declared.latency";
        pub static SIZES: DistributionSummary = "macros.declared.sizes", "content.type" = "json";
        pub static QUEUE: Gauge = "macros.declared.queue";
        pub static PEAK: MaxGauge = "macros.declared.peak";
        pub static SLOW: PercentileTimer = "macros.declared.slow";
        pub static BYTES: spectator::PercentileDistributionSummary = "macros.declared.bytes";
        /// Bytes read, as a source that only grows reports them.
        pub static READ: MonotonicCounter = "macros.declared.read", dev = "sda";
        /// When the last backup succeeded.
        pub static BACKUP: AgeGauge = "macros.declared.backup";
        /// Migrations in flight.
        pub static MIGRATIONS: spectator::LongTaskTimer = "macros.declared.migrations";
    }
}

metrics! {
    static LOCAL: Counter = "macros.declared.local";
}

#[test]
fn declared_statics_deref_to_their_meters() {
    use declared::*;
    REQUESTS.increment();
    REQUESTS.increment();
    LATENCY.record(Duration::from_millis(3));
    SIZES.record(10.0);
    QUEUE.set(4.0);
    PEAK.set(9.0);
    SLOW.record(Duration::from_millis(50));
    BYTES.record(100.0);
    LOCAL.increment();

    let g = global();
    assert_eq!(
        g.counter("macros.declared.requests", &[("statusCode", "200")])
            .count(),
        2.0
    );
    assert_eq!(g.timer("macros.declared.latency", &[]).count(), 1);
    let sizes = g.distribution_summary("macros.declared.sizes", &[("content.type", "json")]);
    assert_eq!(sizes.count(), 1);
    assert_eq!(g.gauge("macros.declared.queue", &[]).get(), 4.0);
    assert_eq!(g.max_gauge("macros.declared.peak", &[]).get(), 9.0);
    assert_eq!(g.percentile_timer("macros.declared.slow", &[]).count(), 1);
    assert_eq!(
        g.percentile_distribution_summary("macros.declared.bytes", &[])
            .count(),
        1
    );
    assert_eq!(g.counter("macros.declared.local", &[]).count(), 1.0);

    READ.set(1024.0);
    assert_eq!(
        g.monotonic_counter("macros.declared.read", &[("dev", "sda")])
            .get(),
        1024.0
    );
    assert_eq!(g.age_gauge("macros.declared.backup", &[]).last_set(), None);
    BACKUP.set(1_700_000_000_000);
    assert_eq!(
        g.age_gauge("macros.declared.backup", &[]).last_set(),
        Some(1_700_000_000_000)
    );
    let migrations = g.long_task_timer("macros.declared.migrations", &[]);
    let first = MIGRATIONS.start();
    let second = MIGRATIONS.start();
    assert_eq!(migrations.active_tasks(), 2);
    first.stop();
    assert_eq!(migrations.active_tasks(), 1);
    drop(second);
    assert_eq!(migrations.active_tasks(), 0);

    // The static holds a handle to the registry's meter: clones see the same counts.
    let handle: spectator::Counter = (*REQUESTS).clone();
    handle.increment();
    assert_eq!(
        g.counter("macros.declared.requests", &[("statusCode", "200")])
            .count(),
        3.0
    );
}

// ---------------------------------------------------------------- time!

fn lookup(id: u32) -> Result<u32, AppError> {
    let v = time!("macros.time.sync", table = "users", {
        if id == 0 {
            return Err(AppError); // early exit from the fn still records
        }
        id * 2
    });
    Ok(v)
}

async fn query(id: u32) -> u32 {
    time!("macros.time.async", percentiles, {
        tokio::task::yield_now().await;
        id + 1
    })
}

#[test]
fn time_block_records_and_returns_the_value() {
    assert_eq!(lookup(2).unwrap(), 4);
    assert!(lookup(0).is_err());
    assert_eq!(timer("macros.time.sync", &[("table", "users")]), 2);

    let total: u32 = (0..3).map(|i| time!("macros.time.loop", { i * 2 })).sum();
    assert_eq!(total, 6);
    assert_eq!(timer("macros.time.loop", &[]), 3, "one site, three records");
}

#[tokio::test]
async fn time_block_works_across_await() {
    assert_eq!(query(1).await, 2);
    assert_eq!(
        global().percentile_timer("macros.time.async", &[]).count(),
        1
    );

    // A block whose future is dropped part-way still records, when its guard drops.
    let stalled = async {
        time!("macros.time.cancelled", {
            std::future::pending::<()>().await;
        })
    };
    assert!(tokio::time::timeout(Duration::from_millis(5), stalled)
        .await
        .is_err());
    assert_eq!(timer("macros.time.cancelled", &[]), 1);
}

// ---------------------------------------------------------------- long tasks

fn active(name: &str, tags: &[(&str, &str)]) -> u64 {
    global().long_task_timer(name, tags).active_tasks()
}

/// A sync fn returning a `Result`: no `result` tag (a task in flight has no outcome).
#[timed("macros.long.sync", kind = "import", long_task)]
fn import(fail: bool) -> Result<u64, AppError> {
    let inside = active("macros.long.sync", &[("kind", "import")]);
    if fail {
        return Err(AppError);
    }
    Ok(inside)
}

#[timed("macros.long.panic", long_task)]
fn long_panics() -> u64 {
    assert_eq!(active("macros.long.panic", &[]), 1);
    panic!("boom")
}

#[timed(long_task)] // named `method.longTask`, tagged `module` and `method`
fn long_default() -> u64 {
    let module = module_path!().replace("::", ".");
    active(
        "method.longTask",
        &[("module", &module), ("method", "long_default")],
    )
}

/// Two attributes on one fn: a timer of the calls and a long task timer of those in flight
/// (`method.timed` and `method.longTask`, both tagged with this fn).
#[timed(percentiles)]
#[timed(long_task)]
fn stacked() -> u64 {
    let module = module_path!().replace("::", ".");
    active(
        "method.longTask",
        &[("module", &module), ("method", "stacked")],
    )
}

#[timed("macros.long.threads", long_task)]
fn long_threads(started: &std::sync::Barrier, checked: &std::sync::Barrier) -> u64 {
    started.wait();
    let inside = active("macros.long.threads", &[]);
    checked.wait();
    inside
}

#[timed("macros.long.async", long_task)]
async fn long_async(gate: tokio::sync::oneshot::Receiver<()>) -> Result<u64, AppError> {
    let inside = active("macros.long.async", &[]);
    gate.await.map_err(|_| AppError)?;
    Ok(inside)
}

impl Worker {
    #[timed("macros.long.method", long_task)]
    fn drain(&mut self) -> u64 {
        self.base = 0;
        active("macros.long.method", &[])
    }

    /// The `#[async_trait]` shape: the task starts when the future is first polled.
    #[timed("macros.long.boxed", long_task)]
    fn boxed_task(&self) -> Pin<Box<dyn Future<Output = u64> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            active("macros.long.boxed", &[]) + u64::from(self.base)
        })
    }
}

#[test]
fn long_tasks_run_while_sync_fns_do() {
    assert_eq!(import(false).unwrap(), 1);
    assert!(import(true).is_err());
    assert_eq!(active("macros.long.sync", &[("kind", "import")]), 0);
    // No `result` tag: the task of the failed call was in the untagged meter too.
    assert_eq!(
        active(
            "macros.long.sync",
            &[("kind", "import"), ("result", "failure")]
        ),
        0
    );

    assert!(catch_unwind(long_panics).is_err());
    assert_eq!(
        active("macros.long.panic", &[]),
        0,
        "an unwind ends the task"
    );

    assert_eq!(long_default(), 1);
    assert_eq!(stacked(), 1);
    let module = module_path!().replace("::", ".");
    let tags = [("module", module.as_str()), ("method", "stacked")];
    assert_eq!(global().percentile_timer("method.timed", &tags).count(), 1);
    assert_eq!(active("method.longTask", &tags), 0);

    let mut w = Worker { base: 3 };
    assert_eq!(w.drain(), 1);
    assert_eq!(w.base, 0);
    assert_eq!(active("macros.long.method", &[]), 0);

    let v = time!("macros.long.block", long_task, {
        active("macros.long.block", &[])
    });
    assert_eq!(v, 1);
    assert_eq!(active("macros.long.block", &[]), 0);

    // Four calls in flight at once, each seeing all four.
    let (started, checked) = (std::sync::Barrier::new(4), std::sync::Barrier::new(4));
    let seen: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| long_threads(&started, &checked)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(seen, [4, 4, 4, 4]);
    assert_eq!(active("macros.long.threads", &[]), 0);
}

#[tokio::test]
async fn long_tasks_of_async_fns_start_when_polled_and_end_when_dropped() {
    let name = "macros.long.async";
    // Never polled: never started.
    let (_tx, rx) = tokio::sync::oneshot::channel();
    let idle = long_async(rx);
    assert_eq!(active(name, &[]), 0);
    drop(idle);
    assert_eq!(active(name, &[]), 0);

    // Polled, waiting on the gate: running; then completes.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut running = Box::pin(assert_send(long_async(rx)));
    assert!(tokio::time::timeout(Duration::from_millis(5), &mut running)
        .await
        .is_err());
    assert_eq!(active(name, &[]), 1);
    tx.send(()).unwrap();
    assert_eq!(running.await.unwrap(), 1);
    assert_eq!(active(name, &[]), 0);

    // Cancelled: the timeout drops the future part-way, which ends its task.
    let (_tx, rx) = tokio::sync::oneshot::channel();
    assert!(
        tokio::time::timeout(Duration::from_millis(5), long_async(rx))
            .await
            .is_err()
    );
    assert_eq!(active(name, &[]), 0);

    // On another task (the future is `Send`).
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = tokio::spawn(long_async(rx));
    tx.send(()).unwrap();
    assert_eq!(spawned.await.unwrap().unwrap(), 1);

    let w = Worker { base: 10 };
    let pending = w.boxed_task();
    assert_eq!(active("macros.long.boxed", &[]), 0, "starts when polled");
    assert_eq!(pending.await, 11);
    assert_eq!(active("macros.long.boxed", &[]), 0);
}

#[test]
fn records_from_many_threads() {
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..250 {
                    counted_many();
                }
            });
        }
    });
    assert_eq!(counter("macros.threads.calls", &[]), 1000.0);
}

#[counted("macros.threads.calls")]
fn counted_many() {}
