//! The background loop behind [`Publisher`]: it drives
//! [`Registry::publish`](crate::Registry::publish) every step, and once more when stopped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
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
        let delay = until_next_step(registry.clock().wall_time(), frequency);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop_rx.changed() => break,
        }
        if *stop_rx.borrow() {
            break;
        }
        registry.publish().await;
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
            return self.registry.publish().await;
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
        let report = self.registry.publish().await;
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
        Ok(rt) => rt.block_on(registry.publish_on(Connection::Fresh)),
        Err(e) => {
            tracing::error!(target: "spectator::registry", "final publish impossible: {e}");
            PublishReport::default()
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
}
