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
