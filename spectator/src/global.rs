//! The process-wide registry, configured from the environment.
//!
//! On first use, [`global()`] reads [`Config::from_env`]. A malformed variable is logged as an
//! error (tracing target `spectator::init`) and the registry falls back to the defaults with
//! publishing off: metrics are still recorded, never lost to a panic. When a URI is configured,
//! publishing starts right away on a background thread of its own (not on the first caller's
//! runtime, which may not live as long as the program), unless
//! `SPECTATOR_DISABLE_AUTO_START_GLOBAL` is set to a non-blank value other than `0`, `false` or
//! `no` (case-insensitive). Then the program calls `global().start()` itself, for example after
//! forking workers.
//!
//! Call [`stop_global`] before exiting to publish what was recorded since the last step.
//!
//! # At exit
//!
//! When [`global()`] started publishing on its own, a program that ends without calling
//! [`stop_global`] still gets its last partial step published where the platform allows:
//! - **Linux**: an `atexit` handler, registered once when publishing auto-starts, runs
//!   [`stop_global`] when the process exits normally (`main` returns, or
//!   `std::process::exit` is called). It stops the loop and does the final publish on a thread
//!   of its own and waits for it at most twice the configured `timeout` plus one second
//!   (at most 30 s), so an aggregator that does not answer cannot hang the exit; past that
//!   the step is lost and the process exits. Forked children inherit the handler: see
//!   *Forking* below.
//! - **Other platforms**: no handler; what was recorded since the last step is lost unless
//!   the program calls [`stop_global`].
//! - **Everywhere**: nothing runs on `abort`, a panic with `panic = "abort"`, a fatal signal
//!   (`SIGKILL`, or `SIGTERM`/`SIGINT` without a handler) or `_exit`: the partial step is
//!   lost. Handle the signals you expect (for example with `tokio::signal`) and call
//!   [`stop_global`] there.
//!
//! A publisher started by the program with `global().start()` is the program's to stop: the
//! handler does not touch it.
//!
//! # Forking
//!
//! Fork worker processes before publishing starts: set `SPECTATOR_DISABLE_AUTO_START_GLOBAL=1`,
//! fork, then call `global().start()` in each worker. A child forked after publishing started
//! (the situation spectator-py warns about) does not deadlock: it can record, publish and
//! `start()` a publisher of its own, because the publish state is tagged with the process id
//! (the parent's loop thread and pooled HTTP connections, which the child does not have, are
//! ignored there), and [`stop_global`] in the child only does a final publish. Two caveats
//! that come with `fork` itself:
//! - the child inherits the parent's unpublished deltas: call
//!   [`measurements`](crate::Registry::measurements) in the child first to discard them, or
//!   they are sent by both processes;
//! - fork outside of a publish: a registry lock held by the publishing thread at that instant
//!   stays held in the child.
//!
//! On Linux a child that exits normally (not through `_exit`) runs the exit handler too: it
//! publishes what the child recorded (and the inherited deltas, unless discarded as above).

use std::sync::{Mutex, OnceLock};

use crate::config::Config;
use crate::publish::{LoopPlace, PublishReport, Publisher};
use crate::sync::lock;
use crate::Registry;

pub(crate) static GLOBAL: OnceLock<Registry> = OnceLock::new();
static AUTO_PUBLISHER: Mutex<Option<Publisher>> = Mutex::new(None);

/// The variable that turns auto-start off.
pub(crate) const DISABLE_AUTO_START: &str = "SPECTATOR_DISABLE_AUTO_START_GLOBAL";

/// The process-wide registry, built from the environment on first use.
///
/// ```
/// let requests = spectator::global().counter("server.numRequests", &[("status", "200")]);
/// requests.increment();
/// ```
pub fn global() -> &'static Registry {
    GLOBAL.get_or_init(init)
}

/// Stops the publisher that [`global()`] started on its own (if any), with one final
/// publish, and returns that publish's report. A publisher started by the program with
/// `global().start()` is the program's to stop.
pub fn stop_global() -> Option<PublishReport> {
    let publisher = lock(&AUTO_PUBLISHER).take();
    publisher.map(|p| p.stop())
}

fn init() -> Registry {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                target: "spectator::init",
                "bad spectator configuration ({e}); using the defaults with publishing off"
            );
            Config::default()
        }
    };
    let auto_start = !matches!(config.location(), Ok(crate::config::Location::None))
        && !flag_set(std::env::var(DISABLE_AUTO_START).ok());
    let (process, tokio) = (config.process_metrics, config.tokio_metrics);
    let registry = Registry::builder().config(config).build();
    if process {
        crate::runtime::register_process_metrics(&registry);
    }
    if tokio {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => crate::runtime::register_tokio_metrics(&registry, &handle),
            Err(_) => tracing::debug!(target: "spectator::init",
                "SPECTATOR_RUNTIME_METRICS has tokio, but global() was first used outside a \
                 tokio runtime: no tokio metrics"),
        }
    }
    if auto_start {
        match registry.start_at(LoopPlace::OwnThread) {
            Ok(p) => {
                *lock(&AUTO_PUBLISHER) = Some(p);
                at_exit::register();
            }
            Err(e) => tracing::error!(
                target: "spectator::init",
                "global registry cannot publish: {e}"
            ),
        }
    } else {
        tracing::debug!(target: "spectator::init", "global registry created; publishing not started");
    }
    registry
}

/// The final publish when the process exits without [`stop_global`] (see the module docs).
#[cfg(target_os = "linux")]
mod at_exit {
    use std::sync::{mpsc, Once};
    use std::time::Duration;

    /// Longest wait at exit, whatever the configured timeout.
    const MAX_WAIT: Duration = Duration::from_secs(30);

    /// Registers the handler, once per process.
    pub(super) fn register() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            // SAFETY: `flush` is an `extern "C" fn()` that never unwinds (it catches panics).
            if unsafe { libc::atexit(flush) } != 0 {
                tracing::warn!(target: "spectator::init",
                    "cannot register the exit handler: call spectator::stop_global() before exiting");
            }
        });
    }

    extern "C" fn flush() {
        // Unwinding out of an `extern "C"` function aborts: keep any panic in here.
        let _ = std::panic::catch_unwind(flush_bounded);
    }

    /// Runs `stop_global` on a thread of its own and waits for it within the bound, so that
    /// neither a slow aggregator nor a lock held by a thread that called `exit` can hang the
    /// exit.
    fn flush_bounded() {
        let Some(registry) = super::GLOBAL.get() else {
            return;
        };
        // Stopped already (or never started)? Without blocking: a thread that called `exit`
        // while holding the lock must not hang the exit here.
        let stopped = match super::AUTO_PUBLISHER.try_lock() {
            Ok(p) => p.is_none(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().is_none(),
            Err(std::sync::TryLockError::WouldBlock) => false,
        };
        if stopped {
            return;
        }
        let timeout = registry.config().timeout;
        let limit = (timeout.saturating_mul(2) + Duration::from_secs(1)).min(MAX_WAIT);
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("spectator-exit".into())
            .spawn(move || {
                let _ = tx.send(super::stop_global());
            });
        if spawned.is_err() {
            return;
        }
        match rx.recv_timeout(limit) {
            Ok(report) => tracing::debug!(target: "spectator::registry", ?report,
                "final publish at exit"),
            Err(_) => tracing::warn!(target: "spectator::registry", ?limit,
                "the final publish at exit did not finish in time; its measurements are lost"),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod at_exit {
    /// No exit hook on this platform: the program calls `stop_global` itself.
    pub(super) fn register() {}
}

fn flag_set(v: Option<String>) -> bool {
    match v.as_deref().map(str::trim) {
        None | Some("") => false,
        Some(v) => !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "no"),
    }
}

#[cfg(test)]
mod tests {
    use super::flag_set;

    #[test]
    fn disable_flag_values() {
        assert!(!flag_set(None));
        assert!(!flag_set(Some(" ".into())));
        assert!(!flag_set(Some("0".into())));
        assert!(!flag_set(Some("False".into())));
        assert!(flag_set(Some("1".into())));
        assert!(flag_set(Some("true".into())));
        assert!(flag_set(Some("yes".into())));
    }
}
