//! Every conformance vector, as spectatord protocol lines, through the spectatord stand-in
//! over UDP and a unix datagram socket: what it would forward to Atlas must equal the vector's
//! `expected_publishes`, as the Atlas HTTP output's requests do (tests/conformance_http.rs).
//!
//! The lines are written here the way a client that aggregates in process sends a step's
//! measurements to spectatord: an `Add` measurement as a `c:` line carrying its `statistic`
//! tag, a gauge as a `g:` line, any other `Max` measurement as an `m:` line; tags sorted by
//! key, values as the shortest decimal that reads back to the same number, whole lines in
//! datagrams of at most 60 000 bytes. This checks the stand-in's parsing and aggregation
//! (counter `WithDefaultStat(count)`, gauge `WithDefaultStat(gauge)`, max gauge
//! `WithStat(max)`), not this crate's own spectatord output.

mod support;

use std::time::Duration;

use spectator::receiver::spectatord::SpectatordListener;
use support::conformance::{as_sent, assert_same, load_all, Sent};

const PATIENCE: Duration = Duration::from_secs(10);
const MAX_DATAGRAM: usize = 60_000;

fn line(m: &Sent) -> String {
    let kind = match (m.op, m.tags.get("statistic").map(String::as_str)) {
        (0, _) => "c",
        (_, Some("gauge")) => "g",
        _ => "m",
    };
    let mut out = format!("{kind}:{}", m.tags["name"]);
    for (k, v) in m.tags.iter().filter(|(k, _)| *k != "name") {
        out.push_str(&format!(",{k}={v}"));
    }
    // `{:?}` is the shortest round-trip form, with an exponent where it is shorter.
    out.push_str(&format!(":{:?}", m.value));
    out
}

fn datagrams(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        match out.last_mut() {
            Some(d) if d.len() + 1 + l.len() <= MAX_DATAGRAM => {
                d.push('\n');
                d.push_str(l);
            }
            _ => out.push(l.clone()),
        }
    }
    out
}

fn replay_all(listener: &SpectatordListener, send: impl Fn(&[u8])) {
    for scenario in load_all() {
        let (clock, builder) = scenario.setup();
        let registry = builder.build();
        let mut received = listener.lines().len();
        let steps = scenario.replay(&registry, &clock, |r| {
            let sent = as_sent(&scenario.common_tags, &r.measurements());
            let lines: Vec<String> = sent.iter().map(line).collect();
            for d in datagrams(&lines) {
                send(d.as_bytes());
                // One datagram at a time: a burst could overflow the socket's buffer.
                received += d.lines().count();
                assert!(
                    listener.wait_for_lines(received, PATIENCE),
                    "{}: lines lost",
                    scenario.name
                );
            }
            listener.take_step()
        });
        assert_eq!(listener.parse_errors(), 0, "{}", scenario.name);
        assert_eq!(steps.len(), scenario.expected.len(), "{}", scenario.name);
        for (i, (step, expected)) in steps.into_iter().zip(&scenario.expected).enumerate() {
            let got: Vec<Sent> = step
                .into_iter()
                .map(|m| Sent {
                    tags: m.tags,
                    op: u8::try_from(m.op).unwrap_or(u8::MAX),
                    value: m.value,
                })
                .collect();
            assert_same(&format!("{} step #{i}", scenario.name), &got, expected);
        }
    }
}

#[test]
fn conformance_vectors_through_udp() {
    let listener = SpectatordListener::bind_udp("127.0.0.1:0").unwrap();
    let target = listener.location().trim_start_matches("udp://").to_string();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    replay_all(&listener, |d| {
        socket.send_to(d, &target).unwrap();
    });
}

#[cfg(unix)]
#[test]
fn conformance_vectors_through_a_unix_socket() {
    let path = std::env::temp_dir().join(format!(
        "spectatord-conformance-{}.unix",
        std::process::id()
    ));
    let listener = SpectatordListener::bind_unix(&path).unwrap();
    let socket = std::os::unix::net::UnixDatagram::unbound().unwrap();
    replay_all(&listener, |d| {
        socket.send_to(d, &path).unwrap();
    });
}
