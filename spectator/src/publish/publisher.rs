//! The background loop behind [`Publisher`]: it drives
//! [`Registry::publish`](crate::Registry::publish) every step, and once more when stopped.
//!
//! A panic during a step (a bug in an output, in the poll, or in a [`Clock`](crate::Clock))
//! is contained to that step: it is logged (tracing target `spectator::registry`, level
//! error), counted in the counter `spectator.publish.panics` (one per panicked step, sent with
//! the next successful publish), and the loop carries on at the next step. The measurements
//! that step had taken from the meters are lost. Final publishes are contained the same way.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Connection, PublishError, PublishReport};
use crate::sync::lock;

/// Time from `now_ms` to the next multiple of `step`.
pub(crate) fn until_next_step(now_ms: u64, step: Duration) -> Duration {
    let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX).max(1);
    let next = (now_ms / step_ms).saturating_add(1).saturating_mul(step_ms);
    Duration::from_millis(next.saturating_sub(now_ms).clamp(1, step_ms))
}

/// A running publish loop, returned by [`Registry::start`](crate::Registry::start).
///
/// [`stop`](Publisher::stop) (blocking, callable from anywhere, including inside a tokio
/// runtime) and [`shutdown`](Publisher::shutdown) (async) end the loop and publish one last
/// time, so that nothing recorded before is lost. Both are idempotent: only the first call
/// publishes. Dropping a `Publisher` that was not stopped ends the loop too, with the final
/// publish done in the background on a best-effort basis (the process may exit first).
#[must_use = "dropping the Publisher stops publishing"]
pub struct Publisher {
    registry: crate::Registry,
    stop_tx: watch::Sender<bool>,
    done_rx: Mutex<Option<mpsc::Receiver<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopped: AtomicBool,
    /// The process that started the loop (a forked child has a copy but not the loop).
    pid: u32,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("stopped", &self.stopped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Where the loop runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoopPlace {
    /// The caller's runtime when there is one, else a thread of its own.
    Auto,
    /// Always a thread of its own.
    OwnThread,
}

impl Publisher {
    /// Claims `outlet` for a loop in this process and starts the loop (see
    /// [`Registry::start`](crate::Registry::start)).
    pub(crate) fn start(
        registry: crate::Registry,
        outlet: &super::Outlet,
        place: LoopPlace,
    ) -> Result<Publisher, PublishError> {
        if !outlet.claim() {
            return Err(PublishError::AlreadyStarted);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel();
        let task = run_loop(registry.clone(), stop_rx, done_tx);
        let mut thread = None;
        match (place, tokio::runtime::Handle::try_current()) {
            (LoopPlace::Auto, Ok(handle)) => {
                handle.spawn(task);
            }
            _ => {
                let spawned = current_thread_runtime().and_then(|rt| {
                    std::thread::Builder::new()
                        .name("spectator-publish".into())
                        .spawn(move || rt.block_on(task))
                });
                match spawned {
                    Ok(t) => thread = Some(t),
                    Err(e) => {
                        outlet.release();
                        return Err(PublishError::Thread(e));
                    }
                }
            }
        }
        let config = registry.config();
        tracing::info!(
            target: "spectator::registry",
            location = ?config.output_location.as_ref().or(config.uri.as_ref()),
            frequency = ?config.frequency,
            own_thread = thread.is_some(),
            "publishing started"
        );
        Ok(Publisher {
            registry,
            stop_tx,
            done_rx: Mutex::new(Some(done_rx)),
            thread: Mutex::new(thread),
            stopped: AtomicBool::new(false),
            pid: std::process::id(),
        })
    }
}

/// A current-thread runtime with every driver, for a thread of the publisher's own.
fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn run_loop(
    registry: crate::Registry,
    mut stop_rx: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let frequency = registry.config().frequency.max(Duration::from_millis(1));
    loop {
        let delay = catch_unwind(AssertUnwindSafe(|| {
            until_next_step(registry.clock().wall_time(), frequency)
        }))
        .unwrap_or_else(|panic| {
            note_panic(&registry, "reading the clock", panic.as_ref());
            frequency
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => break,
        }
        if *stop_rx.borrow() {
            break;
        }
        contained_publish(&registry, Connection::Shared).await;
    }
    let _ = done.send(());
}

impl Publisher {
    /// Stops the loop and publishes one last time; blocks until that publish is done.
    ///
    /// Safe to call from a plain thread or from inside a tokio runtime (of any flavour): the
    /// final publish runs on a short-lived thread of its own, with its own HTTP connection.
    /// Against a failing aggregator it gives up after its retries (at most about one
    /// `frequency` plus one `timeout`); what could not be sent stays queued in the registry
    /// for a later [`Registry::publish`](crate::Registry::publish). Returns that publish's
    /// report; later calls return an empty one.
    ///
    /// In a process forked after this publisher started, the loop is not there (it stays
    /// in the parent): `stop` only does the final publish, of what the child recorded.
    pub fn stop(&self) -> PublishReport {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return PublishReport::default();
        }
        if self.inherited() {
            return final_publish_on_thread(self.registry.clone());
        }
        let _ = self.stop_tx.send(true);
        self.wait_for_loop_blocking();
        let report = final_publish_on_thread(self.registry.clone());
        self.registry.release_loop();
        report
    }

    /// Stops the loop, waits for a publish in progress, and publishes one last time.
    /// Returns that publish's report; later calls return an empty one. In a forked child,
    /// only the final publish is done (see [`stop`](Publisher::stop)).
    pub async fn shutdown(&self) -> PublishReport {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return PublishReport::default();
        }
        if self.inherited() {
            return contained_publish(&self.registry, Connection::Shared).await;
        }
        let _ = self.stop_tx.send(true);
        if let Some(t) = self.take_thread() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        } else if let Some(rx) = self.take_done_rx() {
            let limit = Instant::now() + self.loop_wait_limit();
            while Instant::now() < limit {
                match rx.try_recv() {
                    Err(mpsc::TryRecvError::Empty) => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    _ => break,
                }
            }
        }
        let report = contained_publish(&self.registry, Connection::Shared).await;
        self.registry.release_loop();
        report
    }

    /// The loop's own thread, once (None when the loop runs on a runtime, or was taken).
    fn take_thread(&self) -> Option<std::thread::JoinHandle<()>> {
        lock(&self.thread).take()
    }

    /// The channel on which the loop says it ended, once.
    fn take_done_rx(&self) -> Option<mpsc::Receiver<()>> {
        lock(&self.done_rx).take()
    }

    /// Whether this is a copy made by `fork` in a child process, where the loop does not run.
    fn inherited(&self) -> bool {
        self.pid != std::process::id()
    }

    /// How long to wait for a publish in progress: one step plus the last POST's timeout.
    fn loop_wait_limit(&self) -> Duration {
        let c = self.registry.config();
        c.frequency + c.timeout + Duration::from_millis(500)
    }

    /// Waits for the loop to exit when that cannot deadlock: always for the own thread, and
    /// for a task on a runtime only when this thread is not itself inside a runtime (it could
    /// be the very thread that task needs).
    fn wait_for_loop_blocking(&self) {
        if let Some(t) = self.take_thread() {
            let _ = t.join();
            return;
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            return;
        }
        if let Some(rx) = self.take_done_rx() {
            let _ = rx.recv_timeout(self.loop_wait_limit());
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        // A copy inherited through fork has no loop to end here, and flushes only on request.
        if self.stopped.swap(true, Ordering::SeqCst) || self.inherited() {
            return;
        }
        let _ = self.stop_tx.send(true);
        let registry = self.registry.clone();
        let spawned = std::thread::Builder::new()
            .name("spectator-flush".into())
            .spawn(move || {
                final_publish_blocking(&registry);
                registry.release_loop();
            });
        if spawned.is_err() {
            self.registry.release_loop();
        }
    }
}

/// One publish on a new thread with its own runtime and HTTP client (so that it does not
/// depend on a runtime the caller may be blocking); waits for it.
fn final_publish_on_thread(registry: crate::Registry) -> PublishReport {
    std::thread::Builder::new()
        .name("spectator-flush".into())
        .spawn(move || final_publish_blocking(&registry))
        .ok()
        .and_then(|t| t.join().ok())
        .unwrap_or_default()
}

fn final_publish_blocking(registry: &crate::Registry) -> PublishReport {
    match current_thread_runtime() {
        Ok(rt) => rt.block_on(contained_publish(registry, Connection::Fresh)),
        Err(e) => {
            tracing::error!(target: "spectator::registry", "final publish impossible: {e}");
            PublishReport::default()
        }
    }
}

/// The counter of publish steps that panicked.
pub(crate) const PANICS: &str = "spectator.publish.panics";

/// One publish with a panic caught, logged and counted: an empty report then.
pub(crate) async fn contained_publish(
    registry: &crate::Registry,
    connection: Connection,
) -> PublishReport {
    match CatchUnwind(Box::pin(registry.publish_on(connection))).await {
        Ok(report) => report,
        Err(panic) => {
            note_panic(registry, "publishing", panic.as_ref());
            PublishReport::default()
        }
    }
}

/// Logs a contained panic and counts it in [`PANICS`] (if even that does not panic: the
/// counter's registration reads the clock, which may be what panicked).
fn note_panic(registry: &crate::Registry, during: &str, panic: &(dyn Any + Send)) {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(
        target: "spectator::registry",
        panic = message,
        "a panic while {during} ended this publish step (a bug); what the step had polled is \
         lost; publishing carries on at the next step"
    );
    let counted = catch_unwind(AssertUnwindSafe(|| {
        registry.counter(PANICS, &[]).increment()
    }));
    if counted.is_err() {
        tracing::error!(target: "spectator::registry", "could not count that panic in {PANICS}");
    }
}

/// A future whose panics come out as `Err` (what `futures::FutureExt::catch_unwind` does).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        // AssertUnwindSafe: after a panic the future is dropped, never polled again, and the
        // registry's locks ignore poisoning (what they guard is whole at every await point).
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_alignment() {
        let s = Duration::from_secs(5);
        assert_eq!(until_next_step(1_600_000_000_000, s), s);
        assert_eq!(
            until_next_step(1_600_000_001_000, s),
            Duration::from_secs(4)
        );
        assert_eq!(
            until_next_step(1_600_000_004_999, s),
            Duration::from_millis(1)
        );
        assert_eq!(until_next_step(u64::MAX, s), Duration::from_millis(1));
    }

    /// A clock whose next `wall_time` panics when armed.
    struct TrapClock(std::sync::Arc<AtomicBool>);

    impl crate::Clock for TrapClock {
        fn wall_time(&self) -> u64 {
            if self.0.swap(false, Ordering::SeqCst) {
                panic!("injected clock failure");
            }
            1_000
        }
        fn monotonic_time(&self) -> u64 {
            0
        }
    }

    #[test]
    fn a_panicking_poll_is_contained_and_counted() {
        let armed = std::sync::Arc::new(AtomicBool::new(false));
        let registry = crate::Registry::builder()
            .output_location("memory")
            .clock(TrapClock(armed.clone()))
            .build();
        let rt = current_thread_runtime().unwrap();
        registry.counter("lost", &[]).increment();
        armed.store(true, Ordering::SeqCst);
        // The poll reads the clock first: the step panics before sending anything.
        let report = rt.block_on(contained_publish(&registry, Connection::Shared));
        assert_eq!(report, PublishReport::default());
        assert!(!armed.load(Ordering::SeqCst), "the trap was not reached");
        assert!(registry.take_written_lines().is_empty());
        // The next step works, and reports the panic.
        registry.counter("kept", &[]).increment();
        let report = rt.block_on(contained_publish(&registry, Connection::Shared));
        assert!(report.sent >= 1, "{report:?}");
        let lines = registry.take_written_lines();
        assert!(
            lines.contains(&"c:spectator.publish.panics,statistic=count:1".to_string()),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.starts_with("c:kept,")), "{lines:?}");
    }
}
