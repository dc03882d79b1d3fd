//! Runtime metrics against what the test itself does: CPU time grows with a busy loop, file
//! descriptors with opened files, threads with spawned threads, tokio busy time with spawned
//! work.

use spectator::{Measurement, Registry};
use std::time::Duration;

fn value(ms: &[Measurement], name: &str, tag: Option<(&str, &str)>) -> Option<f64> {
    ms.iter()
        .find(|m| {
            m.id.name() == name
                && match tag {
                    Some((k, v)) => m.id.tag(k) == Some(v),
                    None => true,
                }
        })
        .map(|m| m.value)
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_follow_what_the_process_does() {
    let registry = Registry::default();
    spectator::runtime::register_process_metrics(&registry);
    let first = registry.measurements();
    // Monotonic counters report nothing at their first sample.
    assert_eq!(value(&first, "rust.cpu.time", None), None);
    let fds = value(&first, "rust.fd", Some(("id", "allocated"))).unwrap();
    let max = value(&first, "rust.fd", Some(("id", "max"))).unwrap();
    let rss = value(&first, "rust.mem.rss", None).unwrap();
    let threads = value(&first, "rust.threads", None).unwrap();
    let uptime = value(&first, "rust.uptime", None).unwrap();
    assert!(fds >= 3.0 && max >= fds, "{fds} of {max}");
    assert!(rss > 1e6, "{rss}");
    assert!(threads >= 1.0, "{threads}");
    assert!((0.0..3600.0).contains(&uptime), "{uptime}");

    // Real soft limit, not a constant.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    assert_eq!(max, limit.rlim_cur as f64);

    // 20 more open files, 3 more threads, ~150 ms of CPU.
    let files: Vec<std::fs::File> = (0..20)
        .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
        .collect();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let stop_rx = std::sync::Arc::new(std::sync::Mutex::new(stop_rx));
    let parked: Vec<_> = (0..3)
        .map(|_| {
            let rx = stop_rx.clone();
            std::thread::spawn(move || {
                let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(30));
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let mut x = 0u64;
    while started.elapsed() < Duration::from_millis(150) {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
    let second = registry.measurements();
    let cpu_user = value(&second, "rust.cpu.time", Some(("mode", "user"))).unwrap_or(0.0);
    assert!(cpu_user >= 0.05, "user CPU seconds in the step: {cpu_user}");
    let fds_now = value(&second, "rust.fd", Some(("id", "allocated"))).unwrap();
    assert!(fds_now >= fds + 20.0, "{fds} -> {fds_now}");
    let threads_now = value(&second, "rust.threads", None).unwrap();
    assert!(threads_now >= threads + 3.0, "{threads} -> {threads_now}");

    drop(files);
    drop(stop_tx);
    for t in parked {
        t.join().unwrap();
    }
}

#[test]
fn tokio_metrics_follow_the_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::default();
    spectator::runtime::register_tokio_metrics(&registry, rt.handle());
    let first = registry.measurements();
    assert_eq!(value(&first, "tokio.workers", None), Some(2.0));
    assert_eq!(value(&first, "tokio.busyTime", None), None, "first sample");
    let id = first
        .iter()
        .find(|m| m.id.name() == "tokio.workers")
        .and_then(|m| m.id.tag("id").map(str::to_owned))
        .unwrap();

    // Busy work on the workers, and tasks alive while we look.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let waiting = rt.spawn(async move {
        let _ = rx.await;
    });
    rt.block_on(async {
        let busy: Vec<_> = (0..4)
            .map(|_| {
                tokio::spawn(async {
                    let started = std::time::Instant::now();
                    while started.elapsed() < Duration::from_millis(50) {
                        std::hint::black_box(0u64);
                    }
                })
            })
            .collect();
        for b in busy {
            b.await.unwrap();
        }
    });
    // A worker adds its busy time up when it parks: let both go idle first.
    std::thread::sleep(Duration::from_millis(200));
    let second = registry.measurements();
    #[cfg(target_has_atomic = "64")]
    {
        // 4 tasks of 50 ms each (wall time; a loaded machine may run them in part off-CPU).
        let busy = value(&second, "tokio.busyTime", None).unwrap_or(0.0);
        assert!(busy >= 0.15, "busy seconds: {busy}");
        let parks = value(&second, "tokio.parks", None).unwrap_or(0.0);
        assert!(parks >= 1.0, "parks: {parks}");
    }
    let alive = value(&second, "tokio.aliveTasks", None).unwrap();
    assert!(alive >= 1.0, "{alive}");
    let _ = tx.send(());
    rt.block_on(waiting).unwrap();

    // A second runtime gets its own id.
    let other = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    spectator::runtime::register_tokio_metrics(&registry, other.handle());
    let ids: std::collections::BTreeSet<String> = registry
        .measurements()
        .iter()
        .filter(|m| m.id.name() == "tokio.workers")
        .filter_map(|m| m.id.tag("id").map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&id));
}

#[test]
fn runtime_metrics_setting_is_checked() {
    let get =
        |v: &'static str| move |k: &str| (k == "SPECTATOR_RUNTIME_METRICS").then(|| v.to_owned());
    let c = spectator::Config::from_lookup(get("process, tokio")).unwrap();
    assert!(c.process_metrics && c.tokio_metrics);
    let c = spectator::Config::from_lookup(get("tokio")).unwrap();
    assert!(!c.process_metrics && c.tokio_metrics);
    let err = spectator::Config::from_lookup(get("process,jvm")).unwrap_err();
    assert_eq!(err.variable(), "SPECTATOR_RUNTIME_METRICS");
    assert!(err.to_string().contains("jvm"), "{err}");
}
