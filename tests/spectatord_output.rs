//! The spectatord output against real sockets that misbehave: a socket that is missing, goes
//! away and comes back, a receiver whose buffer is full, a port nobody listens on, a line too
//! long for a datagram. Nothing may panic or block, every line is either sent or counted as
//! dropped, and delivery resumes by itself.

use spectator::{Registry, RegistryBuilder};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn registry(location: &str) -> Registry {
    RegistryBuilder::default().output_location(location).build()
}

/// The `spectator.measurements{id=dropped,error=output}` count the last publishes recorded.
fn dropped_output(r: &Registry) -> f64 {
    r.counter(
        "spectator.measurements",
        &[("id", "dropped"), ("error", "output")],
    )
    .count()
}

#[cfg(unix)]
mod unix {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::path::PathBuf;

    fn socket_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("spectator-out-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    fn received(sock: &UnixDatagram) -> Vec<String> {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut lines = Vec::new();
        while let Ok(n) = sock.recv(&mut buf) {
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            lines.extend(text.split('\n').map(str::to_owned));
        }
        lines
    }

    #[test]
    fn missing_socket_drops_and_counts_then_delivers_once_it_appears() {
        let rt = runtime();
        let path = socket_path("late.unix");
        let r = registry(&format!("unix://{}", path.display()));
        let c = r.counter("app.requests", &[]);
        c.increment();
        let report = rt.block_on(r.publish());
        assert_eq!((report.sent, report.dropped_output), (0, 1), "{report:?}");
        assert_eq!(dropped_output(&r), 1.0);

        let sock = UnixDatagram::bind(&path).unwrap();
        c.add(2.0);
        let report = rt.block_on(r.publish());
        assert_eq!(report.dropped, 0, "{report:?}");
        let lines = received(&sock);
        assert!(
            lines.contains(&"c:app.requests,statistic=count:2".to_owned()),
            "{lines:?}"
        );
        // The drop of the first step went out as a self-metric.
        assert!(
            lines.contains(
                &"c:spectator.measurements,error=output,id=dropped,statistic=count:1".to_owned()
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn socket_removed_mid_run_is_reopened_when_it_comes_back() {
        let rt = runtime();
        let path = socket_path("flaky.unix");
        let r = registry(&format!("unix://{}", path.display()));
        let g = r.gauge("app.queue", &[]);

        let first = UnixDatagram::bind(&path).unwrap();
        g.set(1.0);
        assert_eq!(rt.block_on(r.publish()).sent, 1);
        assert_eq!(received(&first), ["g:app.queue,statistic=gauge:1"]);

        drop(first);
        std::fs::remove_file(&path).unwrap();
        g.set(2.0);
        let report = rt.block_on(r.publish());
        assert_eq!(report.sent, 0);
        assert!(report.dropped_output >= 1, "{report:?}");

        let second = UnixDatagram::bind(&path).unwrap();
        g.set(3.0);
        let report = rt.block_on(r.publish());
        assert_eq!(report.dropped, 0, "{report:?}");
        assert!(received(&second).contains(&"g:app.queue,statistic=gauge:3".to_owned()));
    }

    #[test]
    fn full_receiver_buffer_drops_the_rest_of_the_step_without_blocking() {
        let rt = runtime();
        let path = socket_path("full.unix");
        // Bound, never read: its queue fills after a few datagrams.
        let sock = UnixDatagram::bind(&path).unwrap();
        let r = registry(&format!("unix://{}", path.display()));
        let counters: Vec<_> = (0..20_000)
            .map(|i| r.counter("app.many", &[("i", &i.to_string())]))
            .collect();
        for c in &counters {
            c.increment();
        }
        let started = Instant::now();
        let report = rt.block_on(r.publish());
        assert!(started.elapsed() < Duration::from_secs(5), "never blocks");
        assert_eq!(report.sent + report.dropped_output, 20_000, "{report:?}");
        assert!(report.dropped_output > 0, "the queue filled: {report:?}");
        assert!(report.sent > 0, "what fitted went out: {report:?}");

        // Drained, the next step goes out whole.
        let _ = received(&sock);
        counters[0].increment();
        let report = rt.block_on(r.publish());
        assert_eq!(report.dropped, 0, "{report:?}");
        assert!(report.sent >= 1);
    }

    #[test]
    fn a_line_longer_than_a_datagram_is_dropped_alone() {
        let rt = runtime();
        let path = socket_path("long.unix");
        let sock = UnixDatagram::bind(&path).unwrap();
        let r = registry(&format!("unix://{}", path.display()));
        let long = "v".repeat(70_000);
        r.counter("app.long", &[("k", &long)]).increment();
        r.counter("app.short", &[]).increment();
        let report = rt.block_on(r.publish());
        assert_eq!((report.sent, report.dropped_output), (1, 1), "{report:?}");
        assert_eq!(received(&sock), ["c:app.short,statistic=count:1"]);
    }

    #[test]
    fn datagrams_hold_whole_lines_up_to_60000_bytes() {
        let rt = runtime();
        let path = socket_path("pack.unix");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let r = registry(&format!("unix://{}", path.display()));
        let counters: Vec<_> = (0..3_000)
            .map(|i| r.counter("app.packed", &[("i", &format!("{i:05}"))]))
            .collect();
        for c in &counters {
            c.increment();
        }
        let report = rt.block_on(r.publish());
        assert_eq!((report.sent, report.dropped), (3_000, 0), "{report:?}");
        let mut buf = vec![0u8; 65_536];
        let mut lines = 0;
        let mut datagrams = 0;
        while let Ok(n) = sock.recv(&mut buf) {
            assert!(n <= 60_000, "{n}");
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            for line in text.split('\n') {
                assert!(line.starts_with("c:app.packed,i="), "{line}");
                assert!(line.ends_with(",statistic=count:1"), "{line}");
                lines += 1;
            }
            datagrams += 1;
        }
        assert_eq!(lines, 3_000);
        assert_eq!(datagrams, report.batches);
        assert!(datagrams > 1, "more than one datagram's worth");
    }
}

#[test]
fn udp_port_nobody_listens_on_never_panics_or_blocks() {
    let rt = runtime();
    // A port that was free a moment ago: sends are refused (ICMP) or vanish.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = registry(&format!("udp://127.0.0.1:{port}"));
    let c = r.counter("app.requests", &[]);
    let started = Instant::now();
    for _ in 0..5 {
        c.increment();
        let report = rt.block_on(r.publish());
        assert!(report.sent + report.dropped_output >= 1, "{report:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn udp_delivers_to_a_listener() {
    let rt = runtime();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let r = registry(&format!("udp://{}", sock.local_addr().unwrap()));
    r.max_gauge("app.inflight", &[("zone", "a")]).set(4.0);
    assert_eq!(rt.block_on(r.publish()).sent, 1);
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf[..n]).unwrap(),
        "m:app.inflight,statistic=max,zone=a:4"
    );
}

#[test]
fn file_output_appends_lines() {
    let rt = runtime();
    let path = std::env::temp_dir().join(format!("spectator-lines-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let r = registry(&format!("file://{}", path.display()));
    let t = r.timer("app.latency", &[]);
    t.record(Duration::from_millis(250));
    rt.block_on(r.publish());
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "c:app.latency,statistic=count:1",
            "c:app.latency,statistic=totalOfSquares:0.0625",
            "c:app.latency,statistic=totalTime:0.25",
            "m:app.latency,statistic=max:0.25",
        ]
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn bad_locations_are_errors_naming_the_setting() {
    for bad in [
        "udp://",
        "udp://host",
        "udp://h:99999",
        "unix://relative",
        "tcp://x:1",
        "file://",
    ] {
        let r = registry(bad);
        let err = r.start().expect_err(bad).to_string();
        assert!(err.contains("invalid output location"), "{bad}: {err}");
        assert!(err.contains(bad), "{bad}: {err}");
        r.counter("still.records", &[]).increment();
        assert_eq!(r.counter("still.records", &[]).count(), 1.0);
    }
    let err = spectator::Config::from_lookup(|k| {
        (k == "SPECTATOR_OUTPUT_LOCATION").then(|| "carrier-pigeon".to_owned())
    })
    .unwrap_err();
    assert_eq!(err.variable(), "SPECTATOR_OUTPUT_LOCATION");
    let both = spectator::Config::from_lookup(|k| match k {
        "SPECTATOR_OUTPUT_LOCATION" => Some("udp".to_owned()),
        "SPECTATOR_URI" => Some("http://127.0.0.1:7101/api/v4/update".to_owned()),
        _ => None,
    })
    .unwrap_err();
    assert!(both.to_string().contains("SPECTATOR_URI"), "{both}");
    assert!(
        both.to_string().contains("SPECTATOR_OUTPUT_LOCATION"),
        "{both}"
    );
    let same = spectator::Config::from_lookup(|k| match k {
        "SPECTATOR_OUTPUT_LOCATION" | "SPECTATOR_URI" => {
            Some("http://127.0.0.1:7101/api/v4/update".to_owned())
        }
        _ => None,
    });
    assert!(same.is_ok());
}
