//! Runtime metrics: the process (CPU, memory, file descriptors, threads, uptime) and tokio
//! runtimes, polled at each step, so nothing is added to any recording path.
//!
//! The names follow Netflix's runtime-metrics packages for other languages (`py.*` in
//! spectator-py-runtime-metrics, `nodejs.*`, Go's `fh.*`), with the prefix `rust.`:
//!
//! | meter | kind | unit |
//! |---|---|---|
//! | `rust.cpu.time{mode=user}`, `{mode=system}` | monotonic counter (rate: CPU seconds per second) | seconds |
//! | `rust.fd{id=allocated}` | gauge: open file descriptors | count |
//! | `rust.fd{id=max}` | gauge: the `RLIMIT_NOFILE` soft limit | count |
//! | `rust.mem.rss` | gauge: resident set size | bytes |
//! | `rust.threads` | gauge: threads of the process | count |
//! | `rust.uptime` | gauge: time since the process started | seconds |
//! | `tokio.workers{id=N}` | gauge: worker threads of the runtime | count |
//! | `tokio.aliveTasks{id=N}` | gauge: tasks spawned and not finished | count |
//! | `tokio.globalQueueDepth{id=N}` | gauge: tasks in the runtime's global queue | count |
//! | `tokio.busyTime{id=N}` | monotonic counter: time all workers spent busy | seconds |
//! | `tokio.parks{id=N}` | monotonic counter: times workers parked | count |
//!
//! The process metrics are read from `/proc/self` and the `getrusage`/`getrlimit` calls
//! without spawning anything; they exist on Linux only ([`register_process_metrics`] is a
//! no-op elsewhere). The tokio metrics use only tokio's stable runtime metrics (no
//! `tokio_unstable`); `tokio.busyTime` and `tokio.parks` need a 64-bit target. `id` numbers the
//! tokio runtimes registered in this process, from 0.
//!
//! For [`global()`](crate::global), `SPECTATOR_RUNTIME_METRICS=process,tokio` (either or both)
//! turns them on; `tokio` picks the runtime current where `global()` is first used (none: a
//! debug log, and nothing is registered).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::Registry;

/// Registers the process metrics (the `rust.*` rows of the module's table) on `registry`,
/// polled at each step. Linux only; a no-op on other platforms. Calling it twice registers
/// the same meters again (each then polls the newest source).
///
/// ```
/// let registry = spectator::Registry::default();
/// spectator::runtime::register_process_metrics(&registry);
/// # #[cfg(target_os = "linux")] {
/// let polled = registry.measurements();
/// assert!(polled.iter().any(|m| m.id.name() == "rust.mem.rss" && m.value > 0.0));
/// # }
/// ```
pub fn register_process_metrics(registry: &Registry) {
    #[cfg(target_os = "linux")]
    linux::register(registry);
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

/// Registers the metrics of the tokio runtime behind `handle` (the `tokio.*` rows of the
/// module's table) on `registry`, tagged `id` = the number of runtimes registered before it in
/// this process. The registry keeps a clone of the handle; the meters keep reporting while the
/// registry lives (a runtime shut down reports its last values).
///
/// ```
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
/// let registry = spectator::Registry::default();
/// spectator::runtime::register_tokio_metrics(&registry, rt.handle());
/// let workers = registry
///     .measurements()
///     .into_iter()
///     .find(|m| m.id.name() == "tokio.workers")
///     .unwrap();
/// assert_eq!(workers.value, 2.0);
/// ```
pub fn register_tokio_metrics(registry: &Registry, handle: &tokio::runtime::Handle) {
    static RUNTIMES: AtomicUsize = AtomicUsize::new(0);
    let id = RUNTIMES.fetch_add(1, Ordering::Relaxed).to_string();
    let tags = [("id", id.as_str())];
    let source = Arc::new(handle.clone());
    let gauge = |name: &str, f: fn(&tokio::runtime::RuntimeMetrics) -> f64| {
        registry.polled_gauge(name, &tags, &source, move |h| f(&h.metrics()));
    };
    gauge("tokio.workers", |m| m.num_workers() as f64);
    gauge("tokio.aliveTasks", |m| m.num_alive_tasks() as f64);
    gauge("tokio.globalQueueDepth", |m| m.global_queue_depth() as f64);
    #[cfg(target_has_atomic = "64")]
    {
        registry.polled_monotonic_counter("tokio.busyTime", &tags, &source, |h| {
            let m = h.metrics();
            (0..m.num_workers())
                .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
                .sum()
        });
        registry.polled_monotonic_counter("tokio.parks", &tags, &source, |h| {
            let m = h.metrics();
            (0..m.num_workers())
                .map(|w| m.worker_park_count(w) as f64)
                .sum()
        });
    }
    registry.own_source(source);
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    /// What the process metrics read; nothing is cached between polls.
    struct Process {
        /// Clock ticks per second (`/proc/self/stat` counts in ticks).
        ticks: f64,
        page_size: f64,
    }

    pub(super) fn register(registry: &Registry) {
        // SAFETY: sysconf only reads system configuration.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let source = Arc::new(Process {
            ticks: if ticks > 0 { ticks as f64 } else { 100.0 },
            page_size: if page > 0 { page as f64 } else { 4096.0 },
        });
        registry.polled_monotonic_counter("rust.cpu.time", &[("mode", "user")], &source, |_| {
            rusage().map_or(f64::NAN, |(user, _)| user)
        });
        registry.polled_monotonic_counter("rust.cpu.time", &[("mode", "system")], &source, |_| {
            rusage().map_or(f64::NAN, |(_, system)| system)
        });
        registry.polled_gauge("rust.fd", &[("id", "allocated")], &source, |_| {
            // The directory listing holds one descriptor of its own while it is read.
            std::fs::read_dir("/proc/self/fd")
                .map_or(f64::NAN, |d| d.count().saturating_sub(1) as f64)
        });
        registry.polled_gauge("rust.fd", &[("id", "max")], &source, |_| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes the struct it is given.
            match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
                0 if limit.rlim_cur != libc::RLIM_INFINITY => limit.rlim_cur as f64,
                _ => f64::NAN,
            }
        });
        registry.polled_gauge("rust.mem.rss", &[], &source, |p| {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok());
            pages.map_or(f64::NAN, |n| n * p.page_size)
        });
        registry.polled_gauge("rust.threads", &[], &source, |_| {
            stat_field(20).unwrap_or(f64::NAN)
        });
        registry.polled_gauge("rust.uptime", &[], &source, |p| {
            let since_boot = std::fs::read_to_string("/proc/uptime")
                .ok()
                .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok());
            match (since_boot, stat_field(22)) {
                (Some(now), Some(start)) => (now - start / p.ticks).max(0.0),
                _ => f64::NAN,
            }
        });
        registry.own_source(source);
    }

    /// User and system CPU seconds of the whole process.
    fn rusage() -> Option<(f64, f64)> {
        // SAFETY: an all-zero rusage is a valid value, and getrusage writes the struct it is
        // given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return None;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some((secs(usage.ru_utime), secs(usage.ru_stime)))
    }

    /// Field `n` of `/proc/self/stat`, numbered from 1 as in proc(5) (20: `num_threads`,
    /// 22: `starttime`). The command name (field 2) may hold spaces and parentheses, so the
    /// fields are counted from its closing `)`: field 3 is the first one after it.
    fn stat_field(n: usize) -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let after_comm = &stat[stat.rfind(')')? + 1..];
        after_comm
            .split_whitespace()
            .nth(n.checked_sub(3)?)?
            .parse()
            .ok()
    }
}
