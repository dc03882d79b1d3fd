//! `Registry::publish`, `Registry::start` and the background loop behind [`Publisher`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::http::HttpSender;
use super::send::{count_non_finite, PublishCore};
use super::{Error, PublishReport};

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

impl crate::Registry {
    fn core(&self) -> PublishCore<'_> {
        PublishCore {
            state: &self.inner.publish_state,
            config: self.config(),
        }
    }

    /// Polls the registry once and sends every measurement now (plus what earlier failed
    /// publishes kept), in batches of `batch_size`, retrying as the module docs say.
    ///
    /// A registry without a URI does nothing here (it does not poll, so
    /// [`measurements`](crate::Registry::measurements) still sees everything) and returns an
    /// empty report. The self-metrics `spectator.measurements{..}` are updated afterwards and
    /// go out with the next publish.
    pub async fn publish(&self) -> PublishReport {
        let sender = match self.core().sender() {
            Ok(s) => s,
            Err(Error::NoUri) => return PublishReport::default(),
            Err(e) => {
                tracing::error!(target: "spectator::registry", "cannot publish: {e}");
                return PublishReport::default();
            }
        };
        self.publish_with(&sender).await
    }

    async fn publish_with(&self, sender: &HttpSender) -> PublishReport {
        let ms = self.measurements();
        let skipped = count_non_finite(&ms);
        let mut report = self.core().send(sender, ms).await;
        report.skipped = skipped;
        self.record_self_metrics(&report);
        tracing::debug!(target: "spectator::registry", ?report, "published");
        report
    }

    fn record_self_metrics(&self, r: &PublishReport) {
        const NAME: &str = "spectator.measurements";
        if r.sent > 0 {
            self.counter(NAME, &[("id", "sent")]).add(r.sent as f64);
        }
        for (error, n) in [
            ("validation", r.dropped_validation),
            ("http-error", r.dropped_http),
            ("other", r.dropped_other),
        ] {
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
    /// [`Error::NoUri`] when the registry has no URI (it records but cannot publish),
    /// [`Error::InvalidUri`] for a URI that is not http(s), [`Error::AlreadyStarted`] when a
    /// publisher of this registry is still running, [`Error::Thread`] when the background
    /// thread cannot be started.
    pub fn start(&self) -> Result<Publisher, Error> {
        self.start_at(LoopPlace::Auto)
    }

    pub(crate) fn start_at(&self, place: LoopPlace) -> Result<Publisher, Error> {
        self.core().sender()?;
        let state = &self.inner.publish_state;
        if !state.claim() {
            return Err(Error::AlreadyStarted);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = mpsc::channel();
        let task = run_loop(self.clone(), stop_rx, done_tx);
        let mut thread = None;
        match (place, tokio::runtime::Handle::try_current()) {
            (LoopPlace::Auto, Ok(handle)) => {
                handle.spawn(task);
            }
            _ => {
                let spawned = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        std::thread::Builder::new()
                            .name("spectator-publish".into())
                            .spawn(move || rt.block_on(task))
                    });
                match spawned {
                    Ok(t) => thread = Some(t),
                    Err(e) => {
                        state.release();
                        return Err(Error::Thread(e));
                    }
                }
            }
        }
        tracing::info!(
            target: "spectator::registry",
            uri = ?self.config().uri,
            frequency = ?self.config().frequency,
            own_thread = thread.is_some(),
            "publishing started"
        );
        Ok(Publisher {
            registry: self.clone(),
            stop_tx,
            done_rx: Mutex::new(Some(done_rx)),
            thread: Mutex::new(thread),
            stopped: AtomicBool::new(false),
            pid: std::process::id(),
        })
    }
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
        self.registry.inner.publish_state.release();
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
        self.registry.inner.publish_state.release();
        report
    }

    /// The loop's own thread, once (None when the loop runs on a runtime, or was taken).
    fn take_thread(&self) -> Option<std::thread::JoinHandle<()>> {
        self.thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The channel on which the loop says it ended, once.
    fn take_done_rx(&self) -> Option<mpsc::Receiver<()>> {
        self.done_rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
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
                registry.inner.publish_state.release();
            });
        if spawned.is_err() {
            self.registry.inner.publish_state.release();
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
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(target: "spectator::registry", "final publish impossible: {e}");
            return PublishReport::default();
        }
    };
    let config = registry.config();
    let Some(uri) = config.uri.as_deref() else {
        return PublishReport::default();
    };
    match HttpSender::new(uri, config.timeout) {
        Ok(sender) => rt.block_on(registry.publish_with(&sender)),
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
