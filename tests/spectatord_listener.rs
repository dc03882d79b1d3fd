//! The spectatord stand-in over real sockets: UDP on 127.0.0.1 and unix datagram sockets,
//! lines as spectator-py 1.2.1 writes them, several lines per datagram, malformed lines, and
//! per-step aggregation as spectatord's meters do.

use std::time::Duration;

use spectator::receiver::spectatord::SpectatordListener;
use spectator::receiver::ReceivedMeasurement;

const PATIENCE: Duration = Duration::from_secs(10);

/// Lines spectator-py 1.2.1's memory writer produced (see the file's header).
fn py_lines() -> Vec<String> {
    include_str!("../spectator/tests/data/spectator-py-1.2.1-lines.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn find<'a>(ms: &'a [ReceivedMeasurement], name: &str, stat: &str) -> &'a ReceivedMeasurement {
    ms.iter()
        .find(|m| m.name() == name && m.tags["statistic"] == stat)
        .unwrap_or_else(|| panic!("no {name} {stat} in {ms:?}"))
}

fn check_py_step(ms: &[ReceivedMeasurement]) {
    let reqs = find(ms, "server.numRequests", "count");
    assert_eq!((reqs.op, reqs.value), (0, 3.5));
    assert_eq!(find(ms, "max.gauge", "max").value, 42.75);
    assert_eq!(find(ms, "req.latency", "count").value, 2.0);
    assert_eq!(find(ms, "resp.size", "totalAmount").value, 1024.0);
    assert!(
        ms.iter().all(|m| m.name() != "queue.size"),
        "a NaN stops the gauge"
    );
}

fn udp_target(listener: &SpectatordListener) -> String {
    let location = listener.location();
    let addr = location.strip_prefix("udp://").expect("a udp location");
    assert!(addr.starts_with("127.0.0.1:"), "{location}");
    addr.to_string()
}

#[test]
fn udp_lines_one_per_datagram_and_batched() {
    let listener = SpectatordListener::bind_udp("127.0.0.1:0").unwrap();
    let target = udp_target(&listener);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let lines = py_lines();
    // One line per datagram, as spectator-py writes without a buffer.
    for l in &lines {
        socket.send_to(l.as_bytes(), &target).unwrap();
    }
    assert!(listener.wait_for_lines(lines.len(), PATIENCE));
    assert_eq!(listener.lines(), lines, "every line, in arrival order");
    let sizes = listener.datagram_sizes();
    assert_eq!(sizes, lines.iter().map(String::len).collect::<Vec<_>>());
    assert_eq!(
        (listener.parsed_lines(), listener.parse_errors()),
        (lines.len() as u64, 0)
    );
    check_py_step(&listener.take_step());

    // The same lines again, batched into one datagram with malformed ones among them.
    let mut batch = lines.join("\n");
    batch.push_str("\nnot a line\nc::1\n\n");
    socket.send_to(batch.as_bytes(), &target).unwrap();
    assert!(listener.wait_for_lines(2 * lines.len() + 2, PATIENCE));
    assert_eq!(listener.datagram_sizes().last(), Some(&batch.len()));
    assert_eq!(listener.parse_errors(), 2);
    let step = listener.take_step();
    check_py_step(&step);
    // The monotonic counters ended both steps on the same values: no increase to report.
    assert!(
        step.iter().all(|m| !m.name().starts_with("mono.")),
        "{step:?}"
    );
}

#[test]
fn monotonic_counters_report_increases_between_steps() {
    let listener = SpectatordListener::bind_udp("127.0.0.1:0").unwrap();
    let target = udp_target(&listener);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let send = |text: &str, n: usize| {
        socket.send_to(text.as_bytes(), &target).unwrap();
        assert!(listener.wait_for_lines(n, PATIENCE));
    };
    send("C:bytes:100\nc:hits:1", 2);
    let first = listener.take_step();
    assert_eq!(
        first.len(),
        1,
        "a monotonic counter's first sample reports nothing"
    );
    assert_eq!(first[0].name(), "hits");
    send("C:bytes:130\nC:bytes:175", 4);
    let second = listener.take_step();
    assert_eq!(second.len(), 1);
    assert_eq!(
        (second[0].name(), second[0].op, second[0].value),
        ("bytes", 0, 75.0)
    );
    assert!(
        listener.take_step().is_empty(),
        "no line, no increase, nothing sent"
    );
}

#[cfg(unix)]
#[test]
fn unix_datagram_socket() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("spectatord-listener-{}", std::process::id()));
    let path = dir.join("nested").join("spectatord.unix");
    let listener = SpectatordListener::bind_unix(&path).unwrap();
    assert_eq!(listener.location(), format!("unix://{}", path.display()));
    let client = UnixDatagram::unbound().unwrap();
    let lines = py_lines();
    client.send_to(lines.join("\n").as_bytes(), &path).unwrap();
    assert!(listener.wait_for_lines(lines.len(), PATIENCE));
    check_py_step(&listener.take_step());
    assert_eq!(listener.datagram_sizes().len(), 1);

    // A second listener on the same path replaces the stale socket, as spectatord does.
    drop(listener);
    assert!(!path.exists(), "the socket file goes with the listener");
    let _stale = UnixDatagram::bind(&path).unwrap();
    let listener = SpectatordListener::bind_unix(&path).unwrap();
    client.send_to(b"g:queue.size:4", &path).unwrap();
    assert!(listener.wait_for_lines(1, PATIENCE));
    let step = listener.take_step();
    assert_eq!((step[0].op, step[0].value), (10, 4.0));
    assert_eq!(step[0].tags["statistic"], "gauge");
    drop(listener);

    // Anything else at the path is left alone.
    std::fs::write(&path, b"precious").unwrap();
    let err = SpectatordListener::bind_unix(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_garbage_is_counted_never_fatal() {
    let listener = SpectatordListener::bind_udp("127.0.0.1:0").unwrap();
    let target = udp_target(&listener);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let garbage: Vec<u8> = (0..=255u8).cycle().take(4000).collect();
    socket.send_to(&garbage, &target).unwrap();
    socket.send_to(b"c:after.garbage:1", &target).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while listener.parsed_lines() < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let step = listener.take_step();
    assert!(step.iter().any(|m| m.name() == "after.garbage"), "{step:?}");
    assert_eq!(listener.datagram_sizes()[0], 4000);
}
